"""The image sample: manifests -> seeded selection -> verified files + lock + attribution.

manifest.py  facts about images (source, sha256, licence) and the seeded selection
download.py  HTTP(S)/file downloads: retries with back-off, resume, atomic writes, hashes
embedded.py  a small offline sample generated in code, for machines without network
lock.py      a fetched folder: its lock file and its images
fetch.py     `fetch`: make a data folder hold exactly the selected sample
weights.py   `nst weights`: pretrained files' sources, fetched into the caches that
             `--weights imagenet` reads, verified
"""
