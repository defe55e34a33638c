"""The default recipe (what `nst transfer` runs with no option) against the tutorial-style
baseline (Adam lr 0.02, 300 steps, docs/benchmarks.md's baseline recipe) on the same backbone and pairs:
seconds per image and the held-out metrics side by side.

    python -m benchmarks.bench_recipe                  # the auto backbone, shared pairs
    python -m benchmarks.bench_recipe --pairs 4 --repeats 2

The backbone is `auto` (offline: the pretrained EfficientNet-Lite0), the judge nst.metrics'
held-out network (Lite2), the pairs the shared photos x paintings (../shared/data) or, without
them, the embedded sample. Arms alternate per pair, so a drift in machine speed hits both.
Each line prints one pair; the last lines the means over pairs and the ratios
baseline/recipe (time: > 1 is faster; style distance: < 1 is closer to the style).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.common import SHARED, cpu_line
from nst.config import TransferConfig
from nst.images import load_image, resize_tensor
from nst.metrics import Evaluator
from nst.optimize import stylize

BASELINE = {"optimizer": "adam", "lr": 0.02, "steps": 300, "beta": 1.0e5}
PAIRS = (
    ("tubingen.jpg", "starry_night.jpg"),
    ("chelsea.png", "the_scream.jpg"),
    ("astronaut.png", "great_wave.jpg"),
    ("coffee.png", "kandinsky_composition_vii.jpg"),
)


def pairs(n: int) -> list[tuple[Path, Path]]:
    if all((SHARED / "content" / c).exists() for c, _ in PAIRS[:n]):
        return [(SHARED / "content" / c, SHARED / "style" / s) for c, s in PAIRS[:n]]
    from nst.data.embedded import write_embedded

    root = Path(tempfile.mkdtemp())
    entries = write_embedded(root, n, n, seed=0)
    photos = [root / e["file"] for e in entries if e["kind"] == "content"]
    styles = [root / e["file"] for e in entries if e["kind"] == "style"]
    return list(zip(photos, styles, strict=True))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1, help="runs per arm and pair (median time)")
    args = p.parse_args(argv)
    recipe = TransferConfig.recipe()
    baseline = recipe.replace(**BASELINE)
    judge = Evaluator(recipe.backbone)
    print(
        f"backbone {recipe.backbone}; judge {judge.held_out['backbone']} "
        f"({judge.held_out['weights']}); torch {torch.__version__}"
    )
    print(cpu_line())
    print(
        f"recipe   { ({k: getattr(recipe, k) for k in ('optimizer', 'lr', 'steps', 'beta', 'size')}) }"
    )
    print(
        f"baseline { ({k: getattr(baseline, k) for k in ('optimizer', 'lr', 'steps', 'beta', 'size')}) }"
    )
    rows: dict[str, list[dict[str, float]]] = {"baseline": [], "recipe": []}
    for content_path, style_path in pairs(args.pairs):
        content, style = load_image(content_path), load_image(style_path)
        for name, config in (("baseline", baseline), ("recipe", recipe)):
            runs = [stylize(config, content, style) for _ in range(args.repeats)]
            result = runs[-1]
            photo = resize_tensor(content, tuple(result.image.shape[-2:]))  # type: ignore[arg-type]
            values = judge.evaluate(photo, style, result.image).values
            row = {"seconds": statistics.median(r.seconds for r in runs), **values}
            rows[name].append(row)
            print(
                f"{content_path.stem} x {style_path.stem:28s} {name:8s} {row['seconds']:6.1f} s  "
                f"style_gram_dist {row['style_gram_dist']:.4f}  ssim {row['ssim']:.3f}",
                flush=True,
            )
    mean = {
        k: {m: statistics.fmean(r[m] for r in v) for m in ("seconds", "style_gram_dist", "ssim")}
        for k, v in rows.items()
    }
    for name, m in mean.items():
        print(
            f"mean over {args.pairs} pairs  {name:8s} {m['seconds']:6.1f} s  "
            f"style_gram_dist {m['style_gram_dist']:.4f}  ssim {m['ssim']:.3f}"
        )
    b, r = mean["baseline"], mean["recipe"]
    print(
        f"ratios  time baseline/recipe {b['seconds'] / r['seconds']:.2f}x (>1: recipe faster) | "
        f"style_gram_dist recipe/baseline {r['style_gram_dist'] / b['style_gram_dist']:.2f} | "
        f"ssim recipe/baseline {r['ssim'] / b['ssim']:.2f}"
    )


if __name__ == "__main__":
    main()
