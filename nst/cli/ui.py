"""`nst ui [--port 5000]`: browse the tracked runs in the MLflow UI, on 127.0.0.1 only.

Runs `mlflow ui` against the project's store (the same URI resolution as `nst transfer`:
--tracking-uri > $MLFLOW_TRACKING_URI > sqlite mlflow.db at the project root). Artifacts of new
experiments go to mlartifacts/ beside the database, as they do for runs logged by nst.
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import socket
import sys

from nst import NstError
from nst.tracking.store import MODEL_VIEW

HELP = "browse MLflow runs in the web UI on 127.0.0.1"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", metavar="URI", help="store to browse (default: the project's)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (default: 1)")
    p.add_argument("--dry-run", action="store_true", help="print the mlflow command, do not run it")


def ui_command(uri: str, host: str, port: int, workers: int = 1) -> list[str]:
    from nst.tracking.store import sqlite_path

    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    db = sqlite_path(uri)
    if db is not None:
        cmd += ["--default-artifact-root", (db.parent / "mlartifacts").as_uri()]
    return cmd


def run(args: argparse.Namespace) -> int:
    from nst.tracking.store import resolve_tracking_uri, sqlite_path

    if not 0 < args.port < 65536:
        raise NstError(f"--port {args.port}: use a port between 1 and 65535")
    uri = resolve_tracking_uri(args.tracking_uri)
    if uri.startswith(("http://", "https://")):
        raise NstError(f"{uri} is a tracking server already: open it in a browser instead")
    if not args.dry_run:
        check_port(args.host, args.port)
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        print(
            f"note: {db} does not exist yet; run `nst transfer` to log a first run", file=sys.stderr
        )
    cmd = ui_command(uri, args.host, args.port, args.workers)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    print(
        f"MLflow UI for {uri}: open http://{args.host}:{args.port}/#/experiments?{MODEL_VIEW} "
        "(the model-development view; Ctrl-C stops it)",
        file=sys.stderr,
    )
    sys.stderr.flush()
    # exec, not a child: a SIGTERM to `nst ui` reaches mlflow itself, which forwards it to its
    # server; an extra parent would die alone and leave the server holding the port
    os.execve(cmd[0], cmd, ui_environment())
    return 0  # not reached


def check_port(host: str, port: int) -> None:
    """NstError naming the port unless `host:port` can be bound now: MLflow's server, started
    on a taken port, prints its own "address already in use" after ours and exits 0."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as err:
        raise NstError(f"--host {host}: not an address of this machine ({err})") from None
    with socket.socket(family, kind, proto) as s:
        # as the server binds: a port left in TIME_WAIT by a stopped server is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise NstError(
                    f"port {port} on {host} is in use: pass --port N for a free one (e.g. "
                    f"--port {port + 1 if port < 65535 else 5000}), or stop what holds it"
                ) from None
            raise NstError(
                f"{host}:{port} cannot be bound ({err.strerror}): choose another --host or --port"
            ) from None


def ui_environment() -> dict[str, str]:
    """The server's environment: MLflow's job runner off. Its huey consumers serve GenAI
    judges nst never uses, take seconds to start, and outlive a stopped server."""
    return {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
