"""Reports: results/<study>/ and results/methods/ -> page model -> figures and sections ->
reports/ (HTML, Markdown).

data.py         read and check results/ (one StudyResults per study; MethodsResults)
page.py         the page model: pages, sections, tables, links
intervals.py    the one interval around a mean (tables and figures), clipped to what a value can be
axes.py         axis helpers: numeric parameter axes (log where searched so), long category labels
figures.py      seaborn figures (Agg)
networks.py     which networks: optimised backbones, how chosen, the judge; the weights banner
study.py        the sections of one study's page
compare.py      sections across studies (a parameter's values side by side)
reconstruct.py  the layer-by-layer reconstruction section
training.py     training curves of the compared methods (each run's losses.jsonl)
methods.py      the "Methods compared" section (results/methods/, `nst methods`)
build.py        `build_report`: every page, written atomically
templates/      jinja2 templates of the HTML and Markdown pages
"""
