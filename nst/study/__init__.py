"""Optuna studies over transfer or training settings: an experiment spec -> trials ->
results/<study>/.

attrs.py     the keys of what a trial and a study record, and the kinds of fault
fields.py    what a trial is: the config class of the experiment's `method` (TransferConfig
             for gatys, TrainConfig for johnson / adain / stytr), its fields, what the study sets
params.py    one searched field: ranges, choices, presets, `when`, checked against that class
spec.py      an experiments/*.yaml file, parsed and checked: fixed, searched, objectives
profiles.py  smoke / quick / full: the budget and sizes of a study (training studies: their own)
backbone.py  `--backbone auto|NAME` (auto: vgg19 if its ImageNet file exists, else
             efficientnet_lite0) and the record of the optimised networks and the judge
space.py     a trial's suggestions -> its config (conditional fields: `when`); the sampler
pairs.py     the (content, style) pairs an optimisation study stylises (validation split)
objective.py one trial: stylise the chosen pairs, judge them, report to the pruner
training.py  one trial of a training study: train on the held-out split, validate while
             training, report each validation to the pruner
pruners.py   pruners that wait for an informative report; scouted successive halving
storage.py   Optuna storages (sqlite, PostgreSQL), heartbeat, retry of a dead worker's trial
faults.py    a trial's fault stays in the trial: fail reasons, unreadable images
outputs.py   results/<study>/: trials table, curves, best images, summary, metrics.json
progress.py  the trials counted against the budget; the terminal's progress bar
parent.py    the study's parent MLflow run: its spec, data lock, best values, trial counts
runner.py    create or resume a study, run its workers, write its outputs
"""
