"""Methods compared: optimisation (Gatys) vs feed-forward (Johnson) vs arbitrary-style
(AdaIN, StyTr2) networks, on one protocol.

Reading guide:

stylizer.py  `Stylizer`: a TransferConfig or a trained checkpoint (path or MLflow URI) ->
             `stylise(content, style) -> Stylised(image, seconds, peak_memory_mb)`
spec.py      experiments/methods.yaml: methods, held-out pairs, profiles (`load_plan`)
run.py       `run_methods`: split, train what needs training, stylise every pair through the
             Stylizer, judge with nst.metrics, write <out>/methods/ atomically

Imports point down: methods uses optimize, models, train and metrics; nothing below imports it
(the report reads its files only).
"""
