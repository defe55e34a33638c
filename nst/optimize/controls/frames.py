"""Progress capture: a frame every k optimisation steps, written as an animated GIF (Pillow)
and, where an encoder is installed, as an MP4 - the "watch it paint" videos of the seed apps.

`FrameCapture` is a `stylize` callback; stylize installs one itself when config.frame_every > 0
and returns the frames in Result.frames (1x3xHxW CPU tensors, exactly what the output would be
at that step: colour and mask post-processing applied). A pyramid's frames have the sizes of
their stages; the writers scale every frame to the largest one.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nst import NstError
from nst.imagefiles import atomic_write
from nst.images import resize_tensor, to_image


class FrameCapture:
    """Callback that keeps finish(image) at steps k, 2k, 3k, ... (so steps // k frames)."""

    def __init__(self, every: int, finish: Callable[[torch.Tensor], torch.Tensor] = lambda x: x):
        if every < 1:
            raise NstError(f"frame_every must be at least 1, got {every}")
        self.every, self.finish = every, finish
        self.frames: list[torch.Tensor] = []
        self.steps: list[int] = []

    def __call__(self, step) -> None:  # type: ignore[no-untyped-def]
        if step.step % self.every == 0:
            # clone: the step's image is the live optimisation variable
            self.frames.append(self.finish(step.image.detach().float().clone()).clamp(0, 1).cpu())
            self.steps.append(step.step)


def _images(frames: Sequence[torch.Tensor]) -> list[Image.Image]:
    if not frames:
        raise NstError("no frames to write: set frame_every to at most the number of steps")
    h = max(int(f.shape[-2]) for f in frames)
    w = max(int(f.shape[-1]) for f in frames)
    return [to_image(resize_tensor(f, (h, w))) for f in frames]


def write_gif(
    frames: Sequence[torch.Tensor], path: str | Path, duration_ms: int = 80, loop: int = 0
) -> Path:
    """Animated GIF, one image per frame, `duration_ms` each, looping forever (loop=0)."""
    path = Path(path)
    images = _images(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=duration_ms,
        loop=loop,
        disposal=1,
    )
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path


def ffmpeg_executable() -> str | None:
    """The ffmpeg binary of imageio-ffmpeg if installed, else one on PATH, else None."""
    try:
        import imageio_ffmpeg  # type: ignore[import-not-found,import-untyped,unused-ignore]

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return shutil.which("ffmpeg")


def write_mp4(frames: Sequence[torch.Tensor], path: str | Path, fps: int = 12) -> Path | None:
    """H.264 MP4 through ffmpeg (raw RGB frames on stdin); None when no encoder is installed.
    Sides are rounded down to even numbers, as yuv420p requires."""
    exe = ffmpeg_executable()
    if exe is None:
        return None
    path = Path(path)
    images = _images(frames)
    w, h = images[0].width // 2 * 2, images[0].height // 2 * 2
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    cmd = [
        exe,
        "-y",
        "-loglevel",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{w}x{h}",
        "-r",
        str(fps),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        str(tmp),
    ]
    data = b"".join(np.asarray(im.crop((0, 0, w, h))).tobytes() for im in images)
    proc = subprocess.run(cmd, input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise NstError(
            f"ffmpeg failed writing {path}: {proc.stderr.decode(errors='replace').strip()[:200]}"
        )
    tmp.replace(path)
    return path


def write_frames(frames: Sequence[torch.Tensor], gif_path: str | Path) -> list[Path]:
    """The GIF at `gif_path` and, when an encoder is installed, an MP4 beside it (same stem)."""
    if Path(gif_path).suffix.lower() != ".gif":
        raise NstError(f"{gif_path}: frames are written as a .gif (an .mp4 goes beside it)")
    gif = write_gif(frames, gif_path)
    mp4 = write_mp4(frames, gif.with_suffix(".mp4"))
    return [gif] if mp4 is None else [gif, mp4]
