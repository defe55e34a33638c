"""Faults at scale: a diverging trial, a broken trial, a corrupt image, a killed worker and a
tracking server that goes away. Real Optuna storages (sqlite, PostgreSQL), real MLflow stores
(sqlite, and `mlflow server` subprocesses), real `nst study` processes killed with SIGKILL."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
import yaml

import nst.study.objective
import nst.study.runner
from nst.images import save_image
from nst.runtime import NonFiniteLoss
from nst.study.attrs import FAIL_REASON, FAULT, MLFLOW_RUN_ID, RETRY_OF, WORKER, Fault, fault_of
from nst.study.faults import UnreadableImageWarning, classify, failure_reason
from nst.study.objective import StudyOptions
from nst.study.parent import ensure_parent_run
from nst.study.runner import n_done, open_study, requeue_if_not_its_own, run_study
from nst.study.spec import load_experiment, parse_experiment
from nst.study.storage import requeue
from nst.tracking.store import TrackingError

REPO = Path(__file__).resolve().parents[1]
NST = [sys.executable, "-m", "nst"]
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_available() -> bool:
    try:
        import psycopg

        psycopg.connect(POSTGRES, connect_timeout=2).close()
    except Exception:
        return False
    return True


def spec_dict(name: str, steps: int = 2, trials: int = 3) -> dict:
    """A small single-objective study: searched style ratio (1e300 overflows the loss)."""
    return {
        "name": name,
        "search": {"style_ratio": {"type": "float", "low": 1.0e2, "high": 1.0e300, "log": True}},
        "objectives": [{"metric": "total"}],
        "sampler": "random",
        "pruner": "none",
        "fixed": {"size": 32, "steps": steps, "weights": "random", "device": "cpu"},
        "pairs": {"count": 1, "seed": 0},
        "budget": {"trials": trials, "timeout_s": 0},
        "profiles": {
            "smoke": {
                "fixed": {"size": 32, "steps": steps},
                "budget": {"trials": trials, "timeout_s": 0},
            }
        },
    }


def enqueue(spec, url: str, ratios: list[float]) -> None:
    study = open_study(spec, url, 0)
    for r in ratios:
        study.enqueue_trial({"style_ratio": r})


# ---------------------------------------------------------------------------- fast, in-process


def test_failure_reasons_name_the_fault():
    assert failure_reason(NonFiniteLoss("loss became nan at step 3")).startswith(
        "non-finite loss: loss became nan"
    )
    assert failure_reason(torch.cuda.OutOfMemoryError("CUDA out of memory")).startswith(
        "out of memory"
    )
    assert failure_reason(MemoryError()).startswith("out of memory")
    assert failure_reason(RuntimeError("DefaultCPUAllocator: out of memory")).startswith(
        "out of memory"
    )
    assert failure_reason(OSError(errno.ENOSPC, "No space left on device")).startswith("disk full")
    assert failure_reason(TrackingError("server down")).startswith("tracking unavailable")
    assert failure_reason(ValueError("bad\nsecond line")) == "error: ValueError: bad"


def test_the_fault_is_named_by_the_error_type_not_its_message():
    assert classify(TrackingError("server down")) is Fault.TRACKING_DOWN
    assert classify(NonFiniteLoss("loss became nan")) is Fault.NON_FINITE
    assert classify(ValueError("tracking unavailable: says the message")) is Fault.ERROR
    assert [f for f in Fault if f.retryable] == [Fault.TRACKING_DOWN, Fault.WORKER_LOST]
    assert fault_of({FAULT: "tracking unavailable"}) is Fault.TRACKING_DOWN
    assert fault_of({}) is None and fault_of({FAULT: "no such fault"}) is None


def failed_trial(study: optuna.Study, **attrs: object) -> optuna.trial.FrozenTrial:
    dist = {"style_ratio": optuna.distributions.FloatDistribution(1.0, 10.0)}
    study.add_trial(
        optuna.create_trial(
            state=optuna.trial.TrialState.FAIL,
            params={"style_ratio": 2.0},
            distributions=dist,
            user_attrs=attrs,
        )
    )
    return study.trials[-1]


def test_requeue_is_decided_by_the_recorded_fault_not_the_reason_text():
    study = optuna.create_study()
    # the store went away, whatever the line says: queued again, its own record not inherited
    down = failed_trial(
        study,
        **{
            FAULT: Fault.TRACKING_DOWN.value,
            FAIL_REASON: "MLflow gone",
            MLFLOW_RUN_ID: "r1",
            WORKER: "h:1",
            "config": {"a": 1},
        },
    )
    assert requeue_if_not_its_own(study, down) == "MLflow gone"
    retry = study.trials[-1]
    assert retry.state.name == "WAITING" and retry.params == down.params
    assert retry.user_attrs == {
        "config": {"a": 1},
        RETRY_OF: down.number,
        "retry_reason": "MLflow gone",
    }
    # the trial's own bug, though its message reads like a tracking fault: not queued
    own = failed_trial(
        study, **{FAULT: Fault.ERROR.value, FAIL_REASON: "tracking unavailable: an nst message"}
    )
    assert requeue_if_not_its_own(study, own) is None
    # a trial without a recorded fault is not guessed from its text either
    old = failed_trial(study, **{FAIL_REASON: "tracking unavailable: from the reason alone"})
    assert requeue_if_not_its_own(study, old) is None
    assert len(study.trials) == 4
    assert not requeue(study, own, Fault.ERROR, "its own fault", max_retry=None)
    assert requeue(study, own, Fault.WORKER_LOST, "worker lost: no heartbeat", max_retry=1)
    assert len(study.trials) == 5


def test_a_nan_trial_fails_alone_with_its_reason_in_optuna_and_mlflow(tmp_path):
    from mlflow import MlflowClient

    spec = parse_experiment(spec_dict("nan_isolation", trials=2))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    enqueue(spec, url, [1.0e300, 1.0e3])  # the first overflows to inf; the study goes on
    out = run_study(
        spec, StudyOptions(out=tmp_path / "results", storage=url, tracking_uri=tracking)
    )
    trials = optuna.load_study(study_name=spec.name, storage=url).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[0].user_attrs["fail_reason"].startswith("non-finite loss: loss became inf")
    assert trials[0].user_attrs[FAULT] == Fault.NON_FINITE.value
    assert "fail_reason" not in trials[1].user_attrs and FAULT not in trials[1].user_attrs
    run = MlflowClient(tracking).get_run(trials[0].user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["nst.fail_reason"].startswith("non-finite loss")
    ok = MlflowClient(tracking).get_run(trials[1].user_attrs["mlflow_run_id"])
    assert ok.info.status == "FINISHED"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failures"] == [
        {"number": 0, "reason": trials[0].user_attrs["fail_reason"], "retried_as": None}
    ]
    assert json.loads((out / "metrics.json").read_text())["n_failed"] == 1


def test_an_out_of_memory_or_any_exception_fails_only_its_trial(tmp_path, monkeypatch):
    spec = parse_experiment(spec_dict("oom_isolation", trials=3))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    enqueue(spec, url, [1.0e3, 2.0e3, 3.0e3])
    real = nst.study.objective.stylize

    def flaky(config, *args, **kwargs):  # the GPU runs out of memory on one config only
        if config.beta == 2.0e3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(nst.study.objective, "stylize", flaky)
    run_study(spec, StudyOptions(out=tmp_path, storage=url, track=False))
    trials = optuna.load_study(study_name=spec.name, storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[1].user_attrs["fail_reason"].startswith("out of memory: OutOfMemoryError")


def corrupt_data(root: Path) -> Path:
    """A data dir (no lock) with 7 good photos and styles, one truncated PNG and one non-image:
    whichever part of the split the broken ones fall in, validation keeps a good photo and a
    good style (validation takes 3 of 8 photos and 2 of 8 styles, nst.data.split)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 40), indexing="ij")
    for i in range(7):
        save_image(
            torch.stack([x, y, x * y * i / 6]).unsqueeze(0), root / "content" / f"good{i}.png"
        )
        save_image(torch.stack([y, x * i / 6, 1 - x]).unsqueeze(0), root / "style" / f"good{i}.png")
    whole = (root / "content" / "good0.png").read_bytes()
    (root / "content" / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (root / "style" / "notes.jpg").write_text("not a picture")
    return root


def test_a_corrupt_image_is_skipped_with_a_warning_and_counted_in_summary_and_report(tmp_path):
    from nst.report.data import load_study
    from nst.report.page import Links
    from nst.report.study import summary_section

    data = corrupt_data(tmp_path / "data")
    d = spec_dict("corrupt_images", trials=1)
    d["search"]["style_ratio"]["high"] = 1.0e6
    spec = parse_experiment(d)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    with pytest.warns(UnreadableImageWarning) as caught:
        out = run_study(spec, StudyOptions(out=tmp_path / "r", storage=url, data=data, track=False))
    warned = " ".join(str(w.message) for w in caught)
    assert "truncated.png" in warned and "notes.jpg" in warned
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(Path(p).name for p in summary["skipped_images"]) == ["notes.jpg", "truncated.png"]
    assert summary["states"] == {"COMPLETE": 1}  # the study ran on the good pair
    assert json.loads((out / "metrics.json").read_text())["n_skipped_images"] == 2
    rows = summary_section(load_study(out), Links(None, None)).tables[0].rows
    assert ["skipped images", "2 unreadable, skipped: truncated.png, notes.jpg"] in rows


def test_a_data_dir_with_no_readable_image_is_a_clear_error(tmp_path):
    from nst import NstError

    data = corrupt_data(tmp_path / "data")
    for good in (data / "content").glob("good*.png"):
        good.write_bytes(b"not a picture either")
    spec = parse_experiment(spec_dict("no_images", trials=1))
    with pytest.warns(UnreadableImageWarning), pytest.raises(NstError, match="no readable"):
        run_study(
            spec,
            StudyOptions(
                out=tmp_path, storage=f"sqlite:///{tmp_path}/o.db", data=data, track=False
            ),
        )


# ---------------------------------------------------------------------------- safe inputs


class Payload:
    """Unpickling this runs code (creates a file): what a hostile weights file would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_weights_with_pickled_code_are_refused_without_running_it(tmp_path):
    from nst import NstError
    from nst.backbones.base import load_state_dict_file

    marker = tmp_path / "pwned"
    torch.save({"features.0.weight": torch.zeros(1), "x": Payload(marker)}, tmp_path / "w.pth")
    with pytest.raises(NstError, match="cannot load weights"):
        load_state_dict_file(tmp_path / "w.pth")
    assert not marker.exists()


def test_yaml_with_python_tags_is_refused(tmp_path):
    from nst import NstError
    from nst.config import TransferConfig
    from nst.study.spec import SpecError

    marker = tmp_path / "pwned"
    evil = f"!!python/object/apply:pathlib.Path.touch [{str(marker)!r}]\n"
    (tmp_path / "e.yaml").write_text("name: x\nsearch: " + evil)
    with pytest.raises(SpecError, match="invalid YAML"):
        load_experiment(tmp_path / "e.yaml")
    (tmp_path / "c.yaml").write_text("size: " + evil)
    with pytest.raises(NstError):
        TransferConfig.from_yaml(tmp_path / "c.yaml")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("file", "kind", "message"),
    [
        ("../outside.png", "content", "unsafe"),
        ("content/../../outside.png", "content", "unsafe"),
        ("/etc/passwd", "content", "unsafe"),
        ("style/a.png", "content", "does not match"),
        ("content/a.png", "weights", "does not match"),
    ],
)
def test_a_tampered_lock_cannot_lead_outside_the_data_dir(tmp_path, file, kind, message):
    from nst import NstError
    from nst.data.lock import list_images

    data = tmp_path / "data"
    for sub in ("content", "style"):
        save_image(torch.rand(1, 3, 8, 8), data / sub / "a.png")
    save_image(torch.rand(1, 3, 8, 8), tmp_path / "outside.png")
    (data / "lock.json").write_text(json.dumps({"files": {file: {"kind": kind}}}))
    with pytest.raises(NstError, match=message):
        list_images(data)


def test_a_symlink_out_of_the_data_dir_is_refused(tmp_path):
    from nst import NstError
    from nst.data.lock import list_images

    data = tmp_path / "data"
    save_image(torch.rand(1, 3, 8, 8), data / "style" / "a.png")
    save_image(torch.rand(1, 3, 8, 8), tmp_path / "secret.png")
    (data / "content").mkdir()
    (data / "content" / "a.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(NstError, match="escapes the data directory"):
        list_images(data)


# ---------------------------------------------------------------------------- real processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """`mlflow server` on 127.0.0.1 with a sqlite backend and served artifacts in `root`."""

    def __init__(self, root: Path, port: int | None = None):
        self.root, self.port = root, port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> MlflowServer:
        mlflow = Path(sys.executable).with_name("mlflow")
        self.proc = subprocess.Popen(
            [
                str(mlflow),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.root / "artifacts"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                import urllib.request

                urllib.request.urlopen(f"{self.uri}/health", timeout=1).read()
                return self
            except OSError:
                assert self.proc.poll() is None, "mlflow server exited"
                time.sleep(0.3)
        raise RuntimeError("mlflow server did not start in 90 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
            self.proc.wait(30)
        self.proc = None


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path / "mlflow").start()
    yield server
    server.stop()


def nst_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "NST_HEARTBEAT_S": "1",
        "NST_GRACE_S": "5",
        # fail fast instead of MLflow's default minutes of retries against a dead server
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
        "OMP_NUM_THREADS": "1",
        **extra,
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def write_spec(path: Path, name: str, steps: int, trials: int) -> Path:
    d = spec_dict(name, steps=steps, trials=trials)
    d["search"]["style_ratio"]["high"] = 1.0e6
    path.write_text(yaml.safe_dump(d))
    return path


def study_cmd(spec: Path, storage: str, tracking: str, out: Path) -> list[str]:
    return [
        *NST,
        "study",
        str(spec),
        "--profile",
        "smoke",
        "--storage",
        storage,
        "--tracking-uri",
        tracking,
        "--out",
        str(out),
    ]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def runs_by_trial(tracking: str, experiment: str) -> dict[int, list]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment}"
    found: dict[int, list] = {}
    for run in client.search_runs([exp.experiment_id], max_results=1000):
        if "nst.trial" in run.data.tags:
            found.setdefault(int(run.data.tags["nst.trial"]), []).append(run)
    return found


def assert_each_finished_trial_once(study: optuna.Study, tracking: str) -> None:
    """Every COMPLETE trial has exactly one MLflow run, FINISHED, the one it names; no other
    FINISHED run exists (nothing duplicated)."""
    runs = runs_by_trial(tracking, f"study-{study.study_name}")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    for t in complete:
        assert [r.info.run_id for r in runs[t.number]] == [t.user_attrs["mlflow_run_id"]]
        assert runs[t.number][0].info.status == "FINISHED"
    finished = [r for rs in runs.values() for r in rs if r.info.status == "FINISHED"]
    assert len(finished) == len(complete)


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.postgres
@pytest.mark.skipif(not _postgres_available(), reason="no PostgreSQL on 127.0.0.1:5432")
def test_sigkill_a_worker_mid_trial_the_study_completes_and_keeps_every_trial_once(
    tmp_path, mlflow_server
):
    name = f"fault_kill_{uuid.uuid4().hex[:8]}"
    spec_file = write_spec(tmp_path / "kill.yaml", name, steps=40, trials=16)
    spec = load_experiment(spec_file).with_profile("smoke")
    storage = POSTGRES
    # the study and its MLflow parent run are made once, before the workers start
    study = open_study(spec, storage, 0)
    opts = StudyOptions(out=tmp_path / "r", storage=POSTGRES, tracking_uri=mlflow_server.uri)
    ensure_parent_run(study, spec, opts)
    cmd = study_cmd(spec_file, POSTGRES, mlflow_server.uri, tmp_path / "r")
    env = nst_env()
    try:
        a = subprocess.Popen(cmd, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
        b = subprocess.Popen(cmd, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)

        def a_is_mid_trial() -> bool:
            ts = study.get_trials(deepcopy=False)
            return any(t.state.name == "COMPLETE" for t in ts) and any(
                t.state.name == "RUNNING"
                and t.user_attrs.get("worker", "").endswith(f":{a.pid}")
                and "mlflow_run_id" in t.user_attrs
                for t in ts
            )

        wait_for(a_is_mid_trial, 180, "worker A to be inside a trial")
        a.send_signal(signal.SIGKILL)
        a.wait()
        _, err = b.communicate(timeout=900)
        assert b.returncode == 0, err[-2000:]

        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.trials
        assert n_done(study) == 16
        assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 16
        killed = [
            t
            for t in trials
            if t.user_attrs.get("worker", "").endswith(f":{a.pid}") and t.state.name == "FAIL"
        ]
        assert len(killed) == 1
        retry = [t for t in trials if t.user_attrs.get("retry_of") == killed[0].number]
        assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
        assert retry[0].params == killed[0].params
        assert retry[0].user_attrs["retry_reason"].startswith("worker lost: no heartbeat")
        assert_each_finished_trial_once(study, mlflow_server.uri)
        dead = runs_by_trial(mlflow_server.uri, f"study-{name}")[killed[0].number]
        assert [r.info.status for r in dead] == ["FAILED"]
        assert dead[0].data.tags["nst.fail_reason"].startswith("worker lost")
        summary = json.loads((tmp_path / "r" / name / "summary.json").read_text())
        assert {
            "number": killed[0].number,
            "reason": retry[0].user_attrs["retry_reason"],
            "retried_as": retry[0].number,
        } in summary["failures"]
    finally:
        for p in (locals().get("a"), locals().get("b")):
            if p is not None and p.poll() is None:
                p.kill()
        optuna.delete_study(study_name=name, storage=storage)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_mlflow_server_stopped_mid_study_fails_clearly_retries_and_loses_nothing(
    tmp_path, mlflow_server
):
    name = "fault_tracking"
    spec_file = write_spec(tmp_path / "track.yaml", name, steps=40, trials=8)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    cmd = study_cmd(spec_file, storage, mlflow_server.uri, tmp_path / "r")
    proc = subprocess.Popen(cmd, env=nst_env(), cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:

        def complete() -> int:
            try:
                trials = optuna.load_study(study_name=name, storage=storage).trials
            except KeyError:  # not created yet
                return 0
            return sum(t.state.name == "COMPLETE" for t in trials)

        wait_for(lambda: complete() >= 2, 180, "two complete trials")
        mlflow_server.stop()
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    # a clear failure: status 2, one line naming the fault and what to do
    assert proc.returncode == 2
    last = err.strip().splitlines()[-1]  # above it: Optuna's log of the failed trial
    assert "tracking unavailable" in last and "re-run to resume" in last, err[-2000:]
    study = optuna.load_study(study_name=name, storage=storage)
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(failed) == 1
    assert failed[0].user_attrs["fail_reason"].startswith("tracking unavailable")
    queued = [t for t in study.trials if t.state.name == "WAITING"]
    assert [t.user_attrs["retry_of"] for t in queued] == [failed[0].number]
    done_before = complete()
    assert done_before >= 2

    # the server comes back on the same store; everything finished so far is in it, once
    mlflow_server.start()
    assert_each_finished_trial_once(study, mlflow_server.uri)
    # resuming runs the queued retry first and fills the budget; nothing is lost
    resumed = subprocess.run(cmd, env=nst_env(), cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    study = optuna.load_study(study_name=name, storage=storage)
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 8
    assert [t.state.name for t in study.trials if t.user_attrs.get("retry_of") is not None] == [
        "COMPLETE"
    ]
    assert_each_finished_trial_once(study, mlflow_server.uri)
    run_id = failed[0].user_attrs.get("mlflow_run_id")
    if run_id:  # the run was created before the server went away: now marked FAILED
        dead = runs_by_trial(mlflow_server.uri, f"study-{name}")[failed[0].number]
        assert [r.info.status for r in dead] == ["FAILED"]
        assert dead[0].data.tags["nst.fail_reason"].startswith("tracking unavailable")
