"""nst fetch against a real HTTP server on 127.0.0.1 that serves the test sample (the embedded
sample, conftest.sample_data) and can misbehave per path (HTTP 500, truncated bodies, slow
answers, HTML instead of an image)."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
import warnings
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import nst.data.fetch
from nst import NstError
from nst.cli import main
from nst.data.download import DownloadError, DownloadPolicy
from nst.data.fetch import OfflineDataWarning, embedded_sample, fetch
from nst.data.lock import DATA_LOCK_SHA256, list_images, lock_hash
from nst.data.manifest import load_manifest, select
from nst.images import save_image

FILES = [
    "content/chelsea.png",
    "content/rocket.png",
    "style/composition_0_2.png",
    "style/texture_brick.png",
]
FAST = DownloadPolicy(timeout=5, retries=2, backoff=0.01)


class Server:
    """http.server in a thread; `behaviour[path]` picks how a path is answered, `log` counts
    requests per path."""

    def __init__(self, root: Path) -> None:
        self.root, self.behaviour, self.log = root, {}, Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = self.path.lstrip("/")
                outer.log[path] += 1
                how = outer.behaviour.get(path, "ok")
                if how == "flaky" and outer.log[path] == 1 or how == "500":
                    return self.send_error(500, "boom")
                if how == "slow":
                    time.sleep(1.0)
                if how == "html":
                    return self._send(b"<html><body>Not found</body></html>", "text/html")
                if how == "garbage":
                    return self._send(b"\xff\xd8 not really a jpeg" * 50, "image/jpeg")
                file = outer.root / (FILES[0] if how == "other" else path)
                if not file.is_file():
                    return self.send_error(404)
                body = file.read_bytes()
                ctype = "image/png" if file.suffix == ".png" else "image/jpeg"
                self._send(body, ctype, cut=how == "truncate")

            def _send(self, body: bytes, ctype: str, cut: bool = False) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if cut else body)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(sample_data: Path):
    srv = Server(sample_data)
    yield srv
    srv.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def write_manifest(path: Path, sample: Path, base: str, **overrides: dict) -> Path:
    """A manifest of FILES with their real sha256 (from the sample's lock.json), served from
    `base`; overrides[file] updates single items."""
    real = json.loads((sample / "lock.json").read_text())["files"]
    items = []
    for file in FILES:
        e = real[file]
        item = {
            "id": e["id"],
            "kind": e["kind"],
            "file": file,
            "url": f"{base}/{file}",
            "title": e["title"],
            "author": e["author"],
            "licence": e["licence"],
            "sha256": e["sha256"],
        }
        item.update(overrides.get(file, {}))
        items.append(item)
    path.write_text(json.dumps({"name": "tiny", "items": items}))
    return path


@pytest.fixture
def manifest(tmp_path: Path, server: Server, sample_data: Path) -> Path:
    return write_manifest(tmp_path / "tiny.json", sample_data, server.url)


def run_fetch(out: Path, manifest: Path, policy: DownloadPolicy = FAST, **kw):  # type: ignore[no-untyped-def]
    return fetch(
        out, manifests=[manifest], n_content=2, n_styles=2, policy=policy, progress=False, **kw
    )


def test_fetch_downloads_verifies_locks_and_attributes(tmp_path, server, manifest, sample_data):
    out = tmp_path / "data"
    report = run_fetch(out, manifest)
    assert report.source == "network" and sorted(report.fetched) == FILES
    assert server.log == Counter({f: 1 for f in FILES})
    lock = json.loads((out / "lock.json").read_text())
    for file in FILES:
        data = (out / file).read_bytes()
        assert data == (sample_data / file).read_bytes()
        entry = lock["files"][file]
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data) and entry["source"] == "network"
    body = {k: v for k, v in lock.items() if k != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert lock["sha256"] == hashlib.sha256(canonical).hexdigest()
    assert lock_hash(out) == lock["sha256"]  # the lock's own record of its identity
    assert report.data_lock_sha256 == lock_hash(out)
    content, styles = list_images(out)
    assert [p.relative_to(out).as_posix() for p in content + styles] == FILES
    attribution = (out / "ATTRIBUTION.md").read_text()
    assert "Brick wall texture (Bricks25)" in attribution and "CC0Textures" in attribution
    assert f"{server.url}/style/texture_brick.png" in attribution
    assert not list(out.rglob("*.part"))


def test_second_run_downloads_nothing(tmp_path, server, manifest):
    out = tmp_path / "data"
    run_fetch(out, manifest)
    first_lock = lock_hash(out)
    server.log.clear()
    report = run_fetch(out, manifest)
    assert server.log == Counter() and report.fetched == [] and sorted(report.kept) == FILES
    assert lock_hash(out) == first_lock


def test_sha256_mismatch_is_rejected(tmp_path, server, sample_data):
    bad = {"style/composition_0_2.png": {"sha256": "0" * 64}}
    manifest = write_manifest(tmp_path / "m.json", sample_data, server.url, **bad)
    out = tmp_path / "data"
    with pytest.raises(DownloadError, match="sha256 mismatch, expected 0000") as err:
        run_fetch(out, manifest)
    assert "1 of 4 files failed" in str(err.value)
    assert server.log["style/composition_0_2.png"] == 1  # a wrong file is not retried
    assert not (out / "style/composition_0_2.png").exists() and not list(out.rglob("*.part"))
    assert "style/composition_0_2.png" not in json.loads((out / "lock.json").read_text())["files"]
    assert (out / "content/chelsea.png").exists()  # the good files are kept for the next run


@pytest.mark.parametrize(
    "how, reason", [("500", "HTTP 500"), ("truncate", "truncated body"), ("slow", "timed out")]
)
def test_transient_failures_are_retried_then_reported(tmp_path, server, manifest, how, reason):
    server.behaviour["content/rocket.png"] = how
    policy = DownloadPolicy(timeout=0.3 if how == "slow" else 5, retries=2, backoff=0.01)
    with pytest.raises(DownloadError) as err:
        run_fetch(tmp_path / "data", manifest, policy)
    message = str(err.value)
    assert f"{server.url}/content/rocket.png: {reason}" in message
    assert "gave up after 3 attempts" in message
    assert server.log["content/rocket.png"] == 3  # first attempt + 2 retries
    assert not (tmp_path / "data/content/rocket.png").exists()


def test_a_transient_failure_then_success_is_accepted(tmp_path, server, manifest):
    server.behaviour["content/rocket.png"] = "flaky"  # 500 once, then the file
    report = run_fetch(tmp_path / "data", manifest)
    assert sorted(report.fetched) == FILES and server.log["content/rocket.png"] == 2


@pytest.mark.parametrize(
    "how, reason",
    [("html", "the server sent text/html, not an image"), ("garbage", "not an image file")],
)
def test_non_images_are_rejected(tmp_path, server, manifest, how, reason):
    server.behaviour["style/texture_brick.png"] = how
    with pytest.raises(DownloadError, match=reason):
        run_fetch(tmp_path / "data", manifest)
    assert server.log["style/texture_brick.png"] == 1
    assert not (tmp_path / "data/style/texture_brick.png").exists()


def test_size_limit(tmp_path, server, manifest, sample_data):
    small, big = (sample_data / f for f in ("content/chelsea.png", "content/rocket.png"))
    assert small.stat().st_size < 250_000 < big.stat().st_size  # 221 kB and 313 kB
    with pytest.raises(DownloadError, match="over the 250,000-byte limit") as err:
        run_fetch(tmp_path / "data", manifest, DownloadPolicy(max_bytes=250_000, backoff=0.01))
    assert "1 of 4 files failed" in str(err.value)  # the other three are under the limit
    assert (tmp_path / "data/content/chelsea.png").exists()
    assert not (tmp_path / "data/content/rocket.png").exists()


def test_interrupted_run_resumes(tmp_path, server, manifest, monkeypatch):
    real, calls = nst.data.fetch.fetch_file, []

    def interrupt_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(nst.data.fetch, "fetch_file", interrupt_third)
    out = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        run_fetch(out, manifest)
    assert len(json.loads((out / "lock.json").read_text())["files"]) == 2
    monkeypatch.setattr(nst.data.fetch, "fetch_file", real)
    done = set(server.log)
    server.log.clear()
    report = run_fetch(out, manifest)
    assert set(server.log) == set(FILES) - done and all(n == 1 for n in server.log.values())
    assert sorted(report.kept) == sorted(done) and len(report.fetched) == 2


def test_a_changed_file_is_fetched_again(tmp_path, server, manifest):
    out = tmp_path / "data"
    run_fetch(out, manifest)
    (out / "content/chelsea.png").write_bytes(b"edited")
    server.log.clear()
    with pytest.warns(UserWarning, match="differs from its locked sha256"):
        run_fetch(out, manifest)
    assert server.log == Counter({"content/chelsea.png": 1})
    assert list_images(out)[0][0].stat().st_size > 1000


def test_the_lock_pins_files_the_manifest_has_no_sha256_for(tmp_path, server, sample_data):
    unpinned = {"style/composition_0_2.png": {"sha256": None}}
    manifest = write_manifest(tmp_path / "m.json", sample_data, server.url, **unpinned)
    out = tmp_path / "data"
    run_fetch(out, manifest)
    (out / "style/composition_0_2.png").unlink()
    server.behaviour["style/composition_0_2.png"] = "other"  # the source now serves other bytes
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        run_fetch(out, manifest)


def test_mirror_directory_and_url(tmp_path, server, sample_data):
    manifest = write_manifest(tmp_path / "m.json", sample_data, closed_port_url())
    report = run_fetch(tmp_path / "a", manifest, mirror=sample_data)
    assert report.source == "mirror" and sorted(report.fetched) == FILES and not server.log
    report = run_fetch(tmp_path / "b", manifest, mirror=server.url + "/")
    assert report.source == "mirror" and server.log == Counter({f: 1 for f in FILES})
    lock = json.loads((tmp_path / "b/lock.json").read_text())
    assert lock["source"] == "mirror"
    assert lock["files"]["content/rocket.png"]["url"].endswith("/content/rocket.png")
    with pytest.raises(NstError, match="no such directory"):
        run_fetch(tmp_path / "c", manifest, mirror=tmp_path / "missing")


def test_offline_falls_back_to_the_embedded_sample_loudly(tmp_path, sample_data):
    manifest = write_manifest(tmp_path / "m.json", sample_data, closed_port_url())
    out = tmp_path / "data"
    with pytest.warns(OfflineDataWarning, match="IMAGE SOURCES UNREACHABLE.*EMBEDDED"):
        report = run_fetch(out, manifest)
    assert report.source == "embedded"
    lock = json.loads((out / "lock.json").read_text())
    assert lock["source"] == "embedded"
    assert {e["source"] for e in lock["files"].values()} == {"embedded"}
    content, styles = list_images(out)
    assert [p.name for p in content] == ["astronaut.png", "chelsea.png"] and len(styles) == 2
    assert "Stefan van der Walt" in (out / "ATTRIBUTION.md").read_text()
    with pytest.raises(NstError, match="cannot be reached"):
        run_fetch(tmp_path / "strict", manifest, fallback=False)


@pytest.mark.parametrize(
    "bad", ["../evil.png", "/etc/passwd", "content/../../evil.png", "notes/x.png", "C:/x.png"]
)
def test_manifest_paths_cannot_escape_the_data_dir(tmp_path, server, sample_data, bad):
    manifest = write_manifest(
        tmp_path / "m.json", sample_data, server.url, **{FILES[0]: {"file": bad}}
    )
    with pytest.raises(NstError, match="unsafe file name"):
        load_manifest(manifest)
    code = main(["fetch", "--out", str(tmp_path / "d"), "--manifest", str(manifest), "--quiet"])
    assert code == 2 and not server.log and not (tmp_path / "evil.png").exists()


def test_cli_fetch_from_a_mirror(tmp_path, sample_data, capsys):
    manifest = write_manifest(tmp_path / "m.json", sample_data, closed_port_url())
    argv = [
        "fetch",
        "--out",
        str(tmp_path / "d"),
        "--manifest",
        str(manifest),
        "--mirror",
        str(sample_data),
        "--content",
        "2",
        "--styles",
        "1",
        "--quiet",
    ]
    assert main(argv) == 0
    assert "3 fetched, 0 kept (source mirror)" in capsys.readouterr().out
    assert main([*argv[:-5], "--content", "1", "--styles", "1", "--quiet"]) == 0
    assert "0 fetched, 2 kept" in capsys.readouterr().out
    assert sum(map(len, list_images(tmp_path / "d"))) == 2  # the dropped file was pruned
    assert len(list((tmp_path / "d").rglob("*.*g"))) == 2


def test_shipped_manifests_selection_is_seeded_and_licences_permissive():
    coco, wikiart = load_manifest("coco_val2017"), load_manifest("wikiart_pd")
    assert len(coco) > 50 and len(wikiart) > 40
    assert {i.licence for i in coco} <= {
        "CC BY 2.0",
        "CC BY-SA 2.0",
        "No known copyright restrictions",
        "United States Government Work",
    }
    assert all(i.kind == "style" and "Public domain" in i.licence for i in wikiart)
    items = coco + wikiart
    a, b = select(items, 3, 5, seed=0), select(items, 3, 5, seed=0)
    assert a == b and a != select(items, 3, 5, seed=1)
    bigger = select(items, 6, 8, seed=0)  # asking for more keeps the earlier picks
    assert [i.id for i in bigger if i.kind == "content"][:3] == [i.id for i in a[:3]]
    with pytest.raises(NstError, match="asked for 1000 content images"):
        select(items, 1000, 1, seed=0)
    assert all(i.sha256 for i in load_manifest("classic"))


def test_embedded_sample_is_deterministic(tmp_path):
    c1, s1 = embedded_sample(tmp_path / "a", 1, 3, seed=7)
    c2, s2 = embedded_sample(tmp_path / "b", 1, 3, seed=7)
    _, s3 = embedded_sample(tmp_path / "c", 1, 3, seed=8)
    digest = lambda paths: [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]  # noqa: E731
    assert digest(c1 + s1) == digest(c2 + s2) and lock_hash(tmp_path / "a") == lock_hash(
        tmp_path / "b"
    )
    assert digest(s1) != digest(s3)  # the generated compositions follow the seed
    assert len(s1) == 3 and any("composition" in p.name for p in s1)
    assert any("texture" in p.name for p in s1)


def test_fetch_summary_and_mlflow_name_the_data_by_one_identity(tmp_path, capsys):
    """`nst fetch` prints the data's identity under the name summary.json records it and the
    study's MLflow parent run is tagged with: one value, one name (data_lock_sha256)."""
    from mlflow import MlflowClient

    from nst.study.objective import StudyOptions
    from nst.study.runner import run_study
    from nst.study.spec import parse_experiment

    mirror, data = tmp_path / "mirror", tmp_path / "data"
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 40), indexing="ij")
    stems = []  # three of each: the smallest data a train / validation / test split takes
    for i in range(3):
        save_image(
            torch.stack([x, y, x * y * i / 2]).unsqueeze(0), mirror / "content" / f"photo{i}.png"
        )
        save_image(
            torch.stack([y, x * i / 2, 1 - x]).unsqueeze(0), mirror / "style" / f"paint{i}.png"
        )
        stems += [("content", f"photo{i}"), ("style", f"paint{i}")]
    items = [
        {
            "id": stem,
            "kind": kind,
            "file": f"{kind}/{stem}.png",
            "url": None,
            "title": stem,
            "author": "nst tests",
            "licence": "CC0",
        }
        for kind, stem in stems
    ]
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"name": "identity", "items": items}))
    argv = [
        "fetch",
        "--out",
        str(data),
        "--manifest",
        str(manifest),
        "--mirror",
        str(mirror),
        "--content",
        "3",
        "--styles",
        "3",
        "--quiet",
    ]
    assert main(argv) == 0
    printed = re.search(r"\bdata_lock_sha256 ([0-9a-f]{64})\b", capsys.readouterr().out)
    assert printed, "nst fetch names the identity data_lock_sha256"
    identity = printed.group(1)
    assert identity == lock_hash(data) == json.loads((data / "lock.json").read_text())["sha256"]

    spec = parse_experiment(
        {
            "name": "identity",
            "objectives": [{"metric": "total"}],
            "sampler": "random",
            "search": {"style_ratio": {"type": "float", "low": 1.0e2, "high": 1.0e4, "log": True}},
            "fixed": {"weights": "random", "device": "cpu"},
            "pruner": "none",
        }
    ).with_profile("smoke", trials=1)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = StudyOptions(
        out=tmp_path / "results",
        storage=f"sqlite:///{tmp_path / 'o.db'}",
        data=data,
        tracking_uri=uri,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights
        out = run_study(spec, options)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"][DATA_LOCK_SHA256] == identity
    parent = MlflowClient(uri).get_run(summary["mlflow"]["parent_run_id"])
    assert parent.data.tags[f"nst.{DATA_LOCK_SHA256}"] == identity
