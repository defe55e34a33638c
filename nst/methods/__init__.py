"""Methods compared: optimisation (Gatys) vs feed-forward (Johnson) vs arbitrary-style
(AdaIN, StyTr2) networks, on one protocol.

Reading guide:

stylizer.py  `Stylizer`: a TransferConfig or a trained checkpoint (path or MLflow URI) ->
             `stylise(content, style) -> Stylized(image, seconds, peak_memory_mb)`
spec.py      experiments/methods.yaml: methods, held-out pairs, profiles (`load_plan`); plan
             files (one method's resolved plan, what the DVC stage train@<method> reads)
split.py     the held-out split: evaluated photos never trained on (also training studies')
training.py  each method's networks trained once per config and reused (`--step train`)
run.py       `run_methods`: stylise every pair through the Stylizer, judge with nst.metrics,
             write <out>/methods/ atomically (`--step evaluate`, or `all` with training)
tracking.py  MLflow: a run per training, a parent run per comparison, a nested run per method

Imports point down: methods uses optimize, models, train and metrics; nothing below imports it
(the report reads its files only).
"""
