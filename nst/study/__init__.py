"""Optuna studies over transfer settings: an experiment spec -> trials -> results/<study>/.

spec.py      an experiments/*.yaml file, parsed and checked: fixed, searched, objectives
profiles.py  smoke / quick / full: the budget and sizes of a study
space.py     a trial's suggestions -> a TransferConfig; the sampler
objective.py one trial: stylise the chosen pairs, judge them, report to the pruner
pruners.py   pruners that wait for an informative report; scouted successive halving
storage.py   Optuna storages (sqlite, PostgreSQL), heartbeat, retry of a dead worker's trial
faults.py    a trial's fault stays in the trial: fail reasons, unreadable images
outputs.py   results/<study>/: trials table, curves, best images, summary
runner.py    create or resume a study, run its workers, write its outputs
"""
