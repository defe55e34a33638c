"""Artistic controls of image optimisation, each a TransferConfig field that defaults to off.

blend.py     several styles, Gram targets mixed by weight
color.py     colour preservation: luminance-only transfer, histogram matching
gradnorm.py  per-term gradient normalisation, layer-weight normalisation
masks.py     spatial control: stylise only where a mask is white
shifts.py    patch-grid artefact mitigations for ViT backbones: jitter, shift averaging
frames.py    progress frames, GIF and MP4
"""
