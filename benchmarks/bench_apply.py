"""`nst apply` as a whole process (start-up, imports, loading, the pass, the PNG written),
eager checkpoint against the exported ONNX graph, at 512 and 1024 px, with the network pass
alone beside them.

The network: johnson (width 32, the paper's), random weights, saved as a checkpoint and
exported by `nst export`. Each `nst apply` is a fresh process (wall time from the parent,
peak resident memory of the child: VmHWM of its /proc/self/status, printed by it);
the pass alone is timed in this process (torch on the eager network, onnxruntime on the
graph), median of --repeats. Arms alternate so drifts in machine speed hit both alike.

    python -m benchmarks.bench_apply [--sizes 512,1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from benchmarks.common import cpu_line


def child_run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of `nst <argv>` in a fresh interpreter."""
    script = (  # VmHWM: the child's own peak (benchmarks.common.rss_mb), in KiB
        "import sys\n"
        "from nst.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
        "print('PEAK', status)\n"
        "sys.exit(code)\n"
    )
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-500:])
    return seconds, int(done.stdout.split("PEAK")[-1]) / 1024


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="512,1024")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    import numpy as np
    import onnxruntime as ort
    import torch

    from nst.cli import main as nst
    from nst.images import save_image
    from nst.models import get_model
    from nst.train.checkpoint import save_model
    from nst.train.config import TrainConfig

    print(cpu_line())
    tmp = Path(tempfile.mkdtemp(prefix="bench_apply_"))
    torch.manual_seed(0)
    net = get_model("johnson", width=32).eval()
    style = save_image(torch.rand(1, 3, 64, 64), tmp / "style.png")
    config = TrainConfig.from_dict({"data": str(tmp), "style": str(style), "device": "cpu"})
    checkpoint = save_model(tmp / "model.pt", net, config, 1, {})
    with open(os.devnull, "w") as quiet:
        stderr, sys.stderr = sys.stderr, quiet
        try:
            nst(["export", "--model", str(checkpoint), "--onnx", str(tmp / "model.onnx")])
        finally:
            sys.stderr = stderr
    sess = ort.InferenceSession(str(tmp / "model.onnx"), providers=["CPUExecutionProvider"])
    print(
        f"johnson width 32 (random weights); median of {args.repeats}; nst apply = a fresh process"
    )
    print(f"  {'px':>5s} {'arm':6s} {'process s':>10s} {'peak MiB':>9s} {'pass s':>7s}")
    for size in (int(s) for s in args.sizes.split(",")):
        photo = save_image(torch.rand(1, 3, size * 3 // 4, size), tmp / f"photo{size}.png")
        runs: dict[str, list[tuple[float, float]]] = {"eager": [], "onnx": []}
        passes: dict[str, list[float]] = {"eager": [], "onnx": []}
        x = torch.rand(1, 3, size * 3 // 4, size)
        for _ in range(args.repeats):
            for arm, model in (("eager", checkpoint), ("onnx", tmp / "model.onnx")):
                out = tmp / f"out_{arm}"
                runs[arm].append(
                    child_run(
                        [
                            "apply",
                            "--model",
                            str(model),
                            "--content",
                            str(photo),
                            "--out",
                            str(out),
                            "--device",
                            "cpu",
                        ]
                    )
                )
            t0 = time.perf_counter()
            with torch.no_grad():
                net(x)
            passes["eager"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sess.run(None, {"image": x.numpy().astype(np.float32)})
            passes["onnx"].append(time.perf_counter() - t0)
        med = {
            arm: (
                statistics.median(r[0] for r in rs),
                statistics.median(r[1] for r in rs),
                statistics.median(passes[arm]),
            )
            for arm, rs in runs.items()
        }
        for arm, (wall, peak, one) in med.items():
            print(f"  {size:5d} {arm:6s} {wall:10.2f} {peak:9.0f} {one:7.3f}")
        e, o = med["eager"], med["onnx"]
        print(
            f"  {'':5s} onnx/eager: process {o[0] / e[0]:.2f}, peak {o[1] / e[1]:.2f}, "
            f"pass {o[2] / e[2]:.2f}"
        )


if __name__ == "__main__":
    main()
