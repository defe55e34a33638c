"""MLflow tracking: every transfer and every study trial is a run.

store.py     where runs go: tracking URIs, artifact locations, the client
tags.py      what a run records about itself: params, provenance and weights tags
transfer.py  the run of one `stylize`: a context and a callback (curves, images, tags)
runs.py      run lifecycle outside one transfer: a study's parent run, ending, failing
"""
