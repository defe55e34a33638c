"""One file from a URL or a local mirror, safely: bounded, retried, verified, atomic.

A download is accepted only if every check passes, in this order:

1. the server answers 2xx (5xx and 429 are retried; other 4xx fail at once),
2. `Content-Type` is `image/*` (or a generic binary type): an HTML error page is refused,
3. the body is no larger than `max_bytes` (checked on `Content-Length` *and* while streaming),
4. the body is complete (bytes read == `Content-Length`; a short read is retried),
5. Pillow can decode it (`nst.images.open_rgb`, which also refuses decompression bombs),
6. its sha256 equals the expected one, when one is known (manifest or lock file).

Transient failures (connection errors, timeouts, truncated bodies, 5xx) are retried with
exponential backoff: attempt k (0-based) waits `backoff * 2**k` seconds before attempt k+1.
The bytes go to a temporary file beside the target and are renamed into place only after
all checks, so an interrupted run never leaves a half-written image under its real name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nst import NstError, __version__
from nst.images import ImageError, open_rgb

USER_AGENT = f"nst/{__version__} (neural style transfer research harness; python-urllib)"
CHUNK = 1 << 16
BINARY_TYPES = ("application/octet-stream", "binary/octet-stream")


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


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_file(
    source: str, dest: Path, *, expected_sha256: str | None = None, policy: DownloadPolicy
) -> tuple[str, int]:
    """Fetch `source` (http(s) URL or local path) into `dest`; return (sha256, size).

    Raises DownloadError with a one-line reason naming `source`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    last: _Transient | None = None
    for attempt in range(policy.retries + 1):
        if attempt:
            time.sleep(policy.backoff * 2 ** (attempt - 1))
        try:
            return _fetch_once(source, dest, expected_sha256, policy)
        except _Transient as err:
            last = err
    assert last is not None
    raise DownloadError(
        f"{source}: {last} (gave up after {policy.retries + 1} attempts)",
        unreachable=last.unreachable,
        attempts=policy.retries + 1,
    )


def _fetch_once(
    source: str, dest: Path, expected: str | None, policy: DownloadPolicy
) -> tuple[str, int]:
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = _copy(source, out, policy)
            out.flush()
            os.fsync(out.fileno())
        try:
            open_rgb(tmp)
        except ImageError as err:
            reason = str(err).split(": ", 1)[-1]
            raise DownloadError(f"{source}: refused, {reason}") from None
        if expected and digest != expected:
            raise DownloadError(
                f"{source}: sha256 mismatch, expected {expected} but got {digest} "
                "(the file changed at the source, or the mirror serves a different file)"
            )
        os.replace(tmp, dest)
        return digest, size
    finally:
        tmp.unlink(missing_ok=True)


def _copy(source: str, out: BinaryIO, policy: DownloadPolicy) -> tuple[str, int]:
    """Stream `source` into `out` within the size limit; return (sha256, size)."""
    if "://" not in source:
        path = Path(source)
        if not path.is_file():
            raise DownloadError(f"{source}: not found in the mirror")
        _check_size(source, path.stat().st_size, policy)
        with open(path, "rb") as f:
            return _stream(source, f, out, policy, None)
    if not source.startswith(("http://", "https://")):
        raise DownloadError(f"{source}: only http(s) URLs and local paths are supported")
    request = urllib.request.Request(source, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=policy.timeout) as response:
            ctype = response.headers.get_content_type()
            if not (ctype.startswith("image/") or ctype in BINARY_TYPES):
                raise DownloadError(f"{source}: refused, the server sent {ctype}, not an image")
            length = response.headers.get("Content-Length")
            expected_len = int(length) if length and length.isdigit() else None
            if expected_len is not None:
                _check_size(source, expected_len, policy)
            return _stream(source, response, out, policy, expected_len)
    except urllib.error.HTTPError as err:
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


def _check_size(source: str, size: int, policy: DownloadPolicy) -> None:
    if size > policy.max_bytes:
        raise DownloadError(
            f"{source}: refused, {size:,} bytes is over the {policy.max_bytes:,}-byte limit"
        )


def _stream(
    source: str, src: BinaryIO, out: BinaryIO, policy: DownloadPolicy, expected_len: int | None
) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while block := src.read(CHUNK):
        size += len(block)
        _check_size(source, size, policy)  # servers may lie about (or omit) Content-Length
        digest.update(block)
        out.write(block)
    if expected_len is not None and size != expected_len:
        raise _Transient(f"truncated body ({size:,} of {expected_len:,} bytes)")
    return digest.hexdigest(), size
