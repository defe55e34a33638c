"""`make bench`: run every benchmark module in turn (each also runs alone: python -m benchmarks.X)."""

import importlib
import os
import sys

MODULES = [
    "bench_transfer",
    "bench_recipe",
    "bench_backbones",
    "bench_pyramid",
    "bench_feature_transform",
    "bench_style_losses",
    "bench_tiling",
    "bench_apply",
    "bench_arbitrary",
    "bench_tracking",
    "bench_study",
    "bench_train",
    "bench_runtime",
]

if __name__ == "__main__":
    os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1", DO_NOT_TRACK="1")
    only = sys.argv[1:] or MODULES
    for name in only:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ModuleNotFoundError as err:
            print(f"== {name}: not available ({err})")
            continue
        print(f"\n== {name}")
        module.main([])
