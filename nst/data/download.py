"""One file from a URL or a local mirror, safely: bounded, retried, verified, atomic.

A download is accepted only if every check passes, in this order:

1. the server answers 2xx (5xx and 429 are retried; other 4xx fail at once),
2. `Content-Type` is `image/*` (or a generic binary type): an HTML error page is refused,
3. the body is no larger than `max_bytes` (checked on `Content-Length` *and* while streaming),
4. the body is complete (bytes read == `Content-Length`; a short read is retried),
5. Pillow can decode it (`nst.imagefiles.open_rgb`, which also refuses decompression bombs),
6. its sha256 equals the expected one, when one is known (manifest or lock file), or starts
   with it when only the first hex digits are known (torchvision's file names carry them).

A non-image file (`binary=True`, e.g. network weights) skips 2 and 5: any Content-Type but
text/* (an error page) is accepted, and `check(path)` may stand in for the decode.

Transient failures (connection errors, timeouts, truncated bodies, 5xx) are retried with
exponential backoff: attempt k (0-based) waits `backoff * 2**k` seconds before attempt k+1.
The bytes go to a temporary file beside the target and are renamed into place only after
all checks, so an interrupted run never leaves a half-written image under its real name.
With `resume=True` that file is `partial_path(dest)` and outlives a transient failure (or
Ctrl-C): the next attempt, or the next run, asks for the rest with an HTTP Range request
and hashes the bytes it already has; a refused file is deleted, partial or not.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nst import NstError, __version__
from nst.imagefiles import new_file_mode, open_rgb

USER_AGENT = f"nst/{__version__} (neural style transfer research harness; python-urllib)"
CHUNK = 1 << 16
BINARY_TYPES = ("application/octet-stream", "binary/octet-stream")

#: progress(bytes so far, total bytes or None when the server does not say)
Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class DownloadPolicy:
    """How hard to try: per-request timeout (s), retries after the first attempt, backoff base
    (s), and the largest accepted file (bytes)."""

    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0
    max_bytes: int = 25 * 1024 * 1024


class DownloadError(NstError):
    """A file that could not be fetched or was refused. `unreachable` marks failures to reach
    the source at all (no connection), which is what triggers the offline fallback."""

    def __init__(self, message: str, *, unreachable: bool = False, attempts: int = 1) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.attempts = attempts


class _Transient(Exception):
    """A failure worth retrying; `unreachable` if no connection could be made."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def partial_path(dest: Path) -> Path:
    """Where a resumable download of `dest` keeps its bytes; the suffix is kept so that a
    check that dispatches on it (.safetensors vs .pth) reads the partial file as `dest`."""
    return dest.with_name(f".{dest.stem}.part{dest.suffix}")


def fetch_file(
    source: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    policy: DownloadPolicy,
    binary: bool = False,
    check: Callable[[Path], None] | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> tuple[str, int]:
    """Fetch `source` (http(s) URL or local path) into `dest`; return (sha256, size).

    `check(path)` raises NstError to refuse the finished file; `progress` is told of every
    block. Raises DownloadError with a one-line reason naming `source`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    opts = _Options(binary, check, partial_path(dest) if resume else None, progress)
    last: _Transient | None = None
    for attempt in range(policy.retries + 1):
        if attempt:
            time.sleep(policy.backoff * 2 ** (attempt - 1))
        try:
            return _fetch_once(source, dest, expected_sha256, policy, opts)
        except _Transient as err:
            last = err
    assert last is not None
    raise DownloadError(
        f"{source}: {last} (gave up after {policy.retries + 1} attempts)",
        unreachable=last.unreachable,
        attempts=policy.retries + 1,
    )


@dataclass(frozen=True)
class _Options:
    binary: bool
    check: Callable[[Path], None] | None
    partial: Path | None  # the resumable partial file, None for a fresh temp file per attempt
    progress: Progress | None


def _fetch_once(
    source: str, dest: Path, expected: str | None, policy: DownloadPolicy, opts: _Options
) -> tuple[str, int]:
    if opts.partial is None:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.fchmod(fd, new_file_mode())  # renamed into place: readable like any new file
        os.close(fd)
        tmp = Path(tmp_name)
    else:
        tmp = opts.partial
    try:
        with open(tmp, "ab") as out:
            digest, size = _copy(source, out, policy, opts)
            out.flush()
            os.fsync(out.fileno())
        _accept(source, tmp, digest, expected, opts)
        os.replace(tmp, dest)
        return digest, size
    except DownloadError:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        # a resumable partial file is kept for the next attempt unless it holds nothing
        if opts.partial is None or (tmp.is_file() and not tmp.stat().st_size):
            tmp.unlink(missing_ok=True)


def _accept(source: str, tmp: Path, digest: str, expected: str | None, opts: _Options) -> None:
    try:
        if not opts.binary:
            open_rgb(tmp)
        if opts.check is not None:
            opts.check(tmp)
    except NstError as err:
        reason = str(err).split(": ", 1)[-1]
        raise DownloadError(f"{source}: refused, {reason}") from None
    if expected and not digest.startswith(expected):
        raise DownloadError(
            f"{source}: sha256 mismatch, expected {expected} but got {digest} "
            "(the file changed at the source, or the mirror serves a different file)"
        )


def _copy(source: str, out: BinaryIO, policy: DownloadPolicy, opts: _Options) -> tuple[str, int]:
    """Stream `source` into `out` (after the bytes it holds, when the server can resume)
    within the size limit; return (sha256, size) of the whole file."""
    offset = out.tell()
    if "://" not in source:
        path = Path(source)
        if not path.is_file():
            raise DownloadError(f"{source}: not found in the mirror")
        _check_size(source, path.stat().st_size, policy)
        _restart(out)  # a local copy is cheap: never resumed
        with open(path, "rb") as f:
            return _stream(source, f, out, policy, path.stat().st_size, opts)
    if not source.startswith(("http://", "https://")):
        raise DownloadError(f"{source}: only http(s) URLs and local paths are supported")
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(source, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=policy.timeout) as response:
            ctype = response.headers.get_content_type()
            if opts.binary and ctype.startswith("text/"):
                raise DownloadError(f"{source}: refused, the server sent {ctype}, not the file")
            if not opts.binary and not (ctype.startswith("image/") or ctype in BINARY_TYPES):
                raise DownloadError(f"{source}: refused, the server sent {ctype}, not an image")
            if offset and not _resumes_at(response, offset):
                _restart(out)  # a 200 is the whole file again
                if response.status == 206:
                    raise _Transient("the server resumed at another offset, starting over")
            length = response.headers.get("Content-Length")
            expected_len = out.tell() + int(length) if length and length.isdigit() else None
            if expected_len is not None:
                _check_size(source, expected_len, policy)
            return _stream(source, response, out, policy, expected_len, opts)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the partial file does not fit the source: start over
            _restart(out)
            raise _Transient("cannot resume (HTTP 416), starting over") from None
        if err.code >= 500 or err.code == 429:
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(f"{source}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        # raised while connecting/sending: the source itself cannot be reached
        raise _Transient(f"cannot connect ({err.reason})", unreachable=True) from None
    except TimeoutError:
        raise _Transient(f"timed out after {policy.timeout:g} s") from None
    except (http.client.IncompleteRead, ConnectionError, http.client.HTTPException) as err:
        raise _Transient(f"connection broken ({type(err).__name__})") from None


def _restart(out: BinaryIO) -> None:
    # truncate() keeps the position, and the next block is hashed from position 0
    out.seek(0)
    out.truncate()


def _resumes_at(response: http.client.HTTPResponse, offset: int) -> bool:
    """Whether a response to `Range: bytes=<offset>-` continues there (206 from `offset`)."""
    start = response.headers.get("Content-Range", "").removeprefix("bytes ").split("-", 1)[0]
    return response.status == 206 and start == str(offset)


def _check_size(source: str, size: int, policy: DownloadPolicy) -> None:
    if size > policy.max_bytes:
        raise DownloadError(
            f"{source}: refused, {size:,} bytes is over the {policy.max_bytes:,}-byte limit"
        )


def _stream(
    source: str,
    src: BinaryIO,
    out: BinaryIO,
    policy: DownloadPolicy,
    expected_len: int | None,
    opts: _Options,
) -> tuple[str, int]:
    """Append `src` to `out`, hashing what `out` already holds first; return (sha256, size)."""
    digest, size = hashlib.sha256(), out.tell()
    if size:
        with open(out.name, "rb") as held:
            for block in iter(lambda: held.read(CHUNK), b""):
                digest.update(block)
    while block := src.read(CHUNK):
        size += len(block)
        _check_size(source, size, policy)  # servers may lie about (or omit) Content-Length
        digest.update(block)
        out.write(block)
        if opts.progress is not None:
            opts.progress(size, expected_len)
    if expected_len is not None and size != expected_len:
        raise _Transient(f"truncated body ({size:,} of {expected_len:,} bytes)")
    return digest.hexdigest(), size
