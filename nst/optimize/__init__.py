"""Image optimisation (Gatys, Ecker & Bethge, 2016): optimise the pixels of one image.

loss.py        `TransferLoss`: nst.perceptual's loss against fixed targets, the start image
optim.py       L-BFGS evaluation reuse (the optimisers and schedules: nst.optimizers)
loop.py        the one optimisation loop (`stylize_stage`): steps, callbacks, stopping
pyramid.py     coarse to fine: one stage per size, each from the last
transfer.py    `stylize`: a config -> one stage or a pyramid
reconstruct.py what a layer sees: noise optimised to one layer's features or Gram
controls/      artistic controls: style blend, colour, gradient normalisation, masks,
               patch-artefact shifts, progress frames
"""

from nst.optimize.loop import Callback, Result, Step
from nst.optimize.transfer import stylize

__all__ = ["Callback", "Result", "Step", "stylize"]
