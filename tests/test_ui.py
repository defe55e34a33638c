"""`nst ui`: the MLflow UI starts on 127.0.0.1 and leaves nothing behind when stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ENV = {
    **os.environ,
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line or environment contains `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:  # the command line, or the environment (MLflow's job runners get the store there)
                seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
            except OSError:
                continue
            if text.encode() in seen:
                found.append(int(proc.name))
    return found


def test_sigterm_stops_the_server_and_every_worker(tmp_path: Path) -> None:
    port, db = free_port(), tmp_path / "ui-test-store.db"
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nst",
            "ui",
            "--tracking-uri",
            f"sqlite:///{db}",
            "--port",
            str(port),
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "ui.log").open("w"),
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert ui.poll() is None, "nst ui exited before serving"
                assert time.monotonic() < deadline, "the UI did not answer within 90 s"
                time.sleep(0.5)
        assert processes_mentioning(str(db))  # the server runs with our store
        # the URL it prints opens MLflow 3's model-development view, not its GenAI default
        said = (tmp_path / "ui.log").read_text()
        assert f"http://127.0.0.1:{port}/#/experiments?workflowType=machine_learning" in said
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=30)
        deadline = time.monotonic() + 15
        while processes_mentioning(str(db)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert processes_mentioning(str(db)) == [], "processes outlived the SIGTERM"
        with socket.socket() as s:
            # SO_REUSEADDR: closed connections may linger in TIME_WAIT, but binding still
            # fails while anything listens on the port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))  # the port is free again
    finally:
        for pid in processes_mentioning(str(db)):
            os.kill(pid, signal.SIGKILL)


def test_a_port_in_use_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    """A taken port: exit 2 with one line naming the port and --port, no "open http://..."
    and no MLflow server (which would print its own error after ours and exit 0). In a
    subprocess: `nst ui` execs MLflow, which must never replace the test process."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        db = tmp_path / "ui-busy.db"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "nst",
                "ui",
                "--tracking-uri",
                f"sqlite:///{db}",
                "--port",
                str(port),
            ],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"nst ui: error: port {port} on 127.0.0.1 is in use: pass --port N for a free one "
        f"(e.g. --port {port + 1}), or stop what holds it"
    ]
    assert done.stdout == "" and not db.exists()
