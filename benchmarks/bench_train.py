"""Feed-forward benchmark: nst's training loop against pytorch/examples' fast_neural_style loop,
inference backends, and one network against a 300-step optimisation, all side by side.

Lines printed (each with the CPU/device it ran on):
  train     images/s at SIZE px, batch BATCH, through the same folder of photos: the reference
            loop (written here the way pytorch/examples' fast_neural_style/neural_style.py
            trains: torchvision vgg16(weights=None).features to relu4_3, Adam 1e-3, fp32, its
            own Gram and MSE, both batches normalised every step, content features computed
            with autograd on, an ImageFolder-style DataLoader) against `nst.train.train` (fp32,
            channels_last, bf16 autocast where native): the same JohnsonNet(32) in every arm
  memory    peak memory of 2 training steps of each arm in a fresh process, setup excluded
            (CUDA: max allocated; CPU: the RSS high-water mark over the RSS when the loop starts)
  infer     ms per image (batch 1) at each of SIZES for eager torch, channels_last torch and the
            ONNX export (nst.models.export) under onnxruntime, with as many threads as torch
  vs-opt    one network pass at 512 px against `stylize` (TransferConfig defaults: VGG19, Adam,
            300 steps): a few steps are timed and extrapolated to 300 (said so in the line)

Arms are interleaved REPEATS times (a shared machine drifts: every arm sees the drift alike);
figures are medians. Loss networks have seeded random weights: speed only, both arms alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from benchmarks.common import SHARED, benchmark_pair, cpu_line, vm_mb
from nst.models.johnson import JohnsonNet
from nst.provenance import bf16_support

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# --- the reference: pytorch/examples fast_neural_style, as it trains --------------------------


class RefVgg16(torch.nn.Module):
    """Their utils-free Vgg16: torchvision features sliced at relu1_2, relu2_2, relu3_3, relu4_3."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import vgg16

        features = vgg16(weights=None).features
        self.slices = torch.nn.ModuleList(
            [features[a:b] for a, b in ((0, 4), (4, 9), (9, 16), (16, 23))]
        )
        for p in self.parameters():
            p.requires_grad = False

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for s in self.slices:
            x = s(x)
            out.append(x)
        return out


def ref_gram(y: torch.Tensor) -> torch.Tensor:
    b, ch, h, w = y.size()
    features = y.view(b, ch, w * h)
    return features.bmm(features.transpose(1, 2)) / (ch * h * w)


def ref_normalize(batch: torch.Tensor) -> torch.Tensor:
    mean = batch.new_tensor(MEAN).view(-1, 1, 1)
    std = batch.new_tensor(STD).view(-1, 1, 1)
    return (batch - mean) / std  # their batch.div_(255) is skipped: our images are in [0, 1]


class PhotoFolder(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """ImageFolder + Resize(size) + CenterCrop(size) + ToTensor, as their train loader."""

    def __init__(self, paths: list[Path], size: int):
        from torchvision import transforms

        self.paths = paths
        self.t = transforms.Compose(
            [transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.t(Image.open(self.paths[i]).convert("RGB"))


class Reference:
    def __init__(self, paths: list[Path], style: torch.Tensor, size: int, batch: int, dev: str):
        torch.manual_seed(0)
        self.dev = torch.device(dev)
        self.net = JohnsonNet(32).to(self.dev).train()
        self.vgg = RefVgg16().to(self.dev)
        self.opt = torch.optim.Adam(self.net.parameters(), 1e-3)
        self.loader = torch.utils.data.DataLoader(
            PhotoFolder(paths, size), batch_size=batch, shuffle=True, drop_last=True
        )
        s = F.interpolate(style, size=(size, size), mode="bilinear").repeat(batch, 1, 1, 1)
        self.gram_style = [ref_gram(y) for y in self.vgg(ref_normalize(s.to(self.dev)))]
        self.batch = batch

    def steps(self, n: int) -> float:
        """Images per second over n steps (data loading included, as in their loop)."""
        mse, done, t = torch.nn.MSELoss(), 0, time.perf_counter()  # their mse_loss
        while done < n:
            for x in self.loader:
                if done == n:
                    break
                self.opt.zero_grad()
                x = x.to(self.dev)
                y = self.net(x)
                y, x = ref_normalize(y), ref_normalize(x)
                features_y, features_x = self.vgg(y), self.vgg(x)
                content_loss = 1e5 * mse(features_y[1], features_x[1])
                style_loss = sum(
                    mse(ref_gram(fy), gs[: len(x)])
                    for fy, gs in zip(features_y, self.gram_style, strict=True)
                )
                total = content_loss + 1e10 * style_loss
                total.backward()
                self.opt.step()
                done += 1
        _sync(self.dev)
        return n * self.batch / (time.perf_counter() - t)


# --- nst's arms --------------------------------------------------------------------------------


class ResetPeak:
    """nst.train hooks: the peak-RSS window starts after the loop's setup (on_start)."""

    def on_start(self, info: dict[str, object]) -> None:
        reset_peak()

    def on_log(self, rows: object) -> None: ...
    def on_sample(self, step: int, images: object) -> None: ...
    def on_checkpoint(self, step: int, path: object) -> None: ...
    def on_end(self, result: object) -> None: ...


def nst_arm(folder: Path, style: Path, size: int, batch: int, dev: str, **changes: object):  # type: ignore[no-untyped-def]
    from nst.train import TrainConfig, train

    def run(n: int, hooks: object = None) -> float:
        config = TrainConfig.from_dict(
            dict(
                data=str(folder),
                style=str(style),
                size=size,
                batch_size=batch,
                steps=n,
                backbone="vgg16",
                weights="random",
                device=dev,
                checkpoint_every=0,
                sample_every=0,
                log_every=n,
                val_images=0,
                **changes,
            )
        )
        with tempfile.TemporaryDirectory() as out:
            result = train(config, Path(out) / "run", progress=False, hooks=hooks)  # type: ignore[arg-type]
            return result.images_per_second

    return run


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def photos(tmp: Path, n: int = 12) -> list[Path]:
    """../shared/data/content's photos, or n generated 320x288 JPEGs."""
    real = sorted(p for p in (SHARED / "content").glob("*") if p.suffix.lower() in (".jpg", ".png"))
    if len(real) >= 8:
        return real
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        arr = (rng.random((9, 10, 3)) * 255).astype(np.uint8)
        p = tmp / f"p{i}.jpg"
        Image.fromarray(arr).resize((320, 288), Image.BICUBIC).save(p)
        out.append(p)
    return out


def lazy_reference(*args: object) -> Callable[..., float]:
    """The reference arm, built on its first call (a memory child builds only its own arm)."""
    built: list[Reference] = []

    def run(n: int, hooks: object = None) -> float:
        if not built:
            built.append(Reference(*args))  # type: ignore[arg-type]
        if hooks is not None:
            reset_peak()
        return built[0].steps(n)

    return run


def arms(args: argparse.Namespace, tmp: Path) -> dict[str, Callable[..., float]]:
    content, style, _ = benchmark_pair()
    paths = photos(tmp)
    folder = tmp / "photos"
    folder.mkdir(exist_ok=True)
    for p in paths:
        (folder / p.name).symlink_to(p.resolve())
    style_path = tmp / "style.png"
    Image.fromarray((style[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(style_path)
    s, b, d = args.size, args.batch, args.device
    out: dict[str, Callable[..., float]] = {
        "reference fp32": lazy_reference(paths, style, s, b, d),
        "nst fp32": nst_arm(folder, style_path, s, b, d),
        "nst fp32 channels_last": nst_arm(folder, style_path, s, b, d, channels_last=True),
    }
    if args.bf16 == "always" or bf16_support(torch.device(d)) == "native" and args.bf16 == "auto":
        out["nst bf16"] = nst_arm(folder, style_path, s, b, d, dtype="bfloat16")
        out["nst bf16 channels_last"] = nst_arm(
            folder, style_path, s, b, d, dtype="bfloat16", channels_last=True
        )
    return out


# --- sections ----------------------------------------------------------------------------------


def bench_train(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fns = arms(args, Path(tmp))
        rates: dict[str, list[float]] = {k: [] for k in fns}
        for fn in fns.values():
            fn(1)  # warm-up: allocator, kernels, page cache
        for _ in range(args.repeats):
            for name, fn in fns.items():
                rates[name].append(fn(args.steps))
    ref = statistics.median(rates["reference fp32"])
    bf16 = bf16_support(torch.device(args.device))
    for name, values in rates.items():
        med = statistics.median(values)
        print(
            f"train {args.size}px batch {args.batch}: {name:24s} {med:6.2f} img/s  "
            f"{med / ref:5.2f}x reference  (runs: {', '.join(f'{v:.2f}' for v in values)}; "
            f"{args.steps} steps x {args.repeats}, interleaved; bf16 {bf16})  [{_where(args)}]"
        )


def bench_memory(args: argparse.Namespace) -> None:
    for name in ("reference fp32", "nst fp32", "nst fp32 channels_last", "nst bf16"):
        if name == "nst bf16" and bf16_support(torch.device(args.device)) != "native":
            continue
        peak = _child(args, name)
        what = (
            "max allocated"
            if args.device.startswith("cuda")
            else "peak RSS over the RSS at the start of the loop, setup excluded"
        )
        print(
            f"memory {args.size}px batch {args.batch}: {name:24s} {peak:8.0f} MiB ({what}; "
            f"2 steps in a fresh process)  [{_where(args)}]"
        )


def _child(args: argparse.Namespace, arm: str) -> float:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_train",
        "--memory-arm",
        arm,
        "--size",
        str(args.size),
        "--batch",
        str(args.batch),
        "--device",
        args.device,
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["mb"])


def memory_child(args: argparse.Namespace) -> None:
    dev = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        fns = arms(args, Path(tmp))
        fns[args.memory_arm](2, hooks=ResetPeak())
    if dev.type == "cuda":
        mb = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        mb = vm_mb("VmHWM") - START_RSS[0]
    print(json.dumps({"mb": mb}))


START_RSS = [0.0]


def reset_peak() -> None:
    """Start a new peak-memory window: CUDA's peak stats, or the kernel's RSS high-water mark
    (writing 5 to /proc/self/clear_refs sets VmHWM to the current RSS, Linux >= 4.0)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    START_RSS[0] = vm_mb("VmRSS")


def bench_infer(args: argparse.Namespace) -> dict[int, float]:
    from nst.models.export import onnx_bytes, run_onnx, session

    torch.manual_seed(0)
    net = JohnsonNet(32).eval()
    sess = session(
        onnx_bytes(net, {"method": "johnson", "options": {"width": 32}}),
        threads=torch.get_num_threads(),
    )
    dev = torch.device(args.device)
    eager, cl = JohnsonNet(32).eval(), JohnsonNet(32).eval()
    eager.load_state_dict(net.state_dict())
    cl.load_state_dict(net.state_dict())
    eager.to(dev), cl.to(dev).to(memory_format=torch.channels_last)
    eager_ms: dict[int, float] = {}
    for size in args.sizes:
        x = torch.rand(1, 3, size, size)
        xd, xcl = x.to(dev), x.to(dev).contiguous(memory_format=torch.channels_last)

        def torch_call(m: torch.nn.Module, inp: torch.Tensor) -> Callable[[], None]:
            def call() -> None:
                with torch.inference_mode():
                    m(inp)
                _sync(dev)

            return call

        fns = {
            "eager torch": torch_call(eager, xd),
            "channels_last torch": torch_call(cl, xcl),
            "onnxruntime (CPU)": lambda x=x: run_onnx(sess, x),
        }  # type: ignore[misc]
        times: dict[str, list[float]] = {k: [] for k in fns}
        for fn in fns.values():
            fn()  # warm-up
        for _ in range(args.repeats):
            for name, fn in fns.items():
                t = time.perf_counter()
                fn()
                times[name].append(1000 * (time.perf_counter() - t))
        base = statistics.median(times["eager torch"])
        eager_ms[size] = base
        for name, values in times.items():
            med = statistics.median(values)
            print(
                f"infer {size}px: {name:20s} {med:8.1f} ms/image  {base / med:5.2f}x eager "
                f"(batch 1, median of {args.repeats}, interleaved)  [{_where(args, name)}]"
            )
    return eager_ms


def bench_vs_optimisation(args: argparse.Namespace, eager_ms: dict[int, float]) -> None:
    from nst.config import TransferConfig
    from nst.optimize.transfer import stylize

    content, style, pair = benchmark_pair()
    config = TransferConfig(
        size=512, steps=args.stylize_steps, weights="random", device=args.device
    )
    result = stylize(config, content, style)
    setup = result.seconds - result.steps * result.seconds_per_step
    full = setup + 300 * result.seconds_per_step
    if 512 not in eager_ms:
        eager_ms = bench_infer(argparse.Namespace(**{**vars(args), "sizes": [512]}))
    net_s = eager_ms[512] / 1000
    print(
        f"vs-opt 512px ({pair}): one network pass {net_s * 1000:.0f} ms vs stylize 300 steps "
        f"~{full:.0f} s (VGG19 Adam; {result.steps} steps timed at "
        f"{result.seconds_per_step:.2f} s/step + {setup:.1f} s setup, EXTRAPOLATED to 300): "
        f"{full / net_s:,.0f}x faster per image  [{_where(args)}]"
    )


def _where(args: argparse.Namespace, name: str = "") -> str:
    if args.device.startswith("cuda") and "onnx" not in name:
        return torch.cuda.get_device_name(torch.device(args.device))
    return cpu_line()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_train")
    p.add_argument("--steps", type=int, default=10, help="training steps per timed run")
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs of every arm")
    p.add_argument("--size", type=int, default=256, help="training crop size")
    p.add_argument("--batch", type=int, default=4, help="training batch size")
    p.add_argument("--sizes", default="256,512,1024", help="inference sizes, comma-separated")
    p.add_argument("--stylize-steps", type=int, default=3, help="stylize steps timed")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument(
        "--bf16",
        choices=("auto", "always", "never"),
        default="auto",
        help="bf16 arms: auto = where native",
    )
    p.add_argument("--only", default="train,memory,infer,vs-opt", help="sections to run")
    p.add_argument("--memory-arm", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if args.memory_arm:
        memory_child(args)
        return
    only = set(args.only.split(","))
    print(cpu_line())
    if "train" in only:
        bench_train(args)
    if "memory" in only:
        bench_memory(args)
    eager_ms = bench_infer(args) if "infer" in only else {}
    if "vs-opt" in only:
        bench_vs_optimisation(args, eager_ms)


if __name__ == "__main__":
    main()
