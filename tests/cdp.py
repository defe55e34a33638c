"""A tiny Chrome DevTools Protocol client: open a page in headless Chromium and report what a
user would see go wrong (console errors, exceptions, failed requests, broken images).

Chromium is started with its own throw-away profile, no network services, and a debugging
port chosen by the browser (read back from DevToolsActivePort), so tests can run in parallel.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: what the page reports about itself after loading
PAGE_STATE = """(() => {
  const imgs = Array.from(document.images).map(i => ({src: i.src.slice(0, 60), complete: i.complete,
                                                      width: i.naturalWidth}));
  const banner = document.getElementById('random-weights-banner');
  const shown = !!banner && banner.offsetHeight > 0 && getComputedStyle(banner).display !== 'none';
  return {images: imgs, banner: shown ? banner.innerText : null, title: document.title,
          width: document.documentElement.scrollWidth};
})()"""


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@dataclass
class PageReport:
    url: str
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)  # anything not file: or data:
    state: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""


class Chromium:
    def __init__(self, profile: Path, binary: str | None = None):
        binary = binary or find_chromium()
        if binary is None:
            raise FileNotFoundError("chromium not found")
        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not open its debugging port")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        self._id = 0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(
        self, url: str, width: int = 1280, height: int = 2000, timeout: float = 60
    ) -> PageReport:
        """Load `url` in a fresh tab; wait for the load event; report errors, state, screenshot."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            target = json.load(resp)
        ws = websocket.create_connection(
            target["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True
        )
        report = PageReport(url)
        try:
            for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
                self._call(ws, method, {}, report)
            self._call(
                ws,
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                report,
            )
            self._call(ws, "Page.navigate", {"url": url}, report)
            self._wait_event(ws, "Page.loadEventFired", report, timeout)
            result = self._call(
                ws, "Runtime.evaluate", {"expression": PAGE_STATE, "returnByValue": True}, report
            )
            report.state = result["result"]["value"]
            shot = self._call(ws, "Page.captureScreenshot", {"format": "png"}, report)
            report.screenshot = base64.b64decode(shot["data"])
        finally:
            ws.close()
        return report

    def _call(
        self, ws: websocket.WebSocket, method: str, params: dict[str, Any], report: PageReport
    ) -> Any:
        self._id += 1
        ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            _record(message, report)

    def _wait_event(
        self, ws: websocket.WebSocket, name: str, report: PageReport, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(ws.recv())
            _record(message, report)
            if message.get("method") == name:
                return
        raise TimeoutError(f"no {name} within {timeout} s")


def _record(message: dict[str, Any], report: PageReport) -> None:
    """Keep the events that mean something went wrong."""
    method, params = message.get("method"), message.get("params", {})
    if method == "Runtime.exceptionThrown":
        report.console_errors.append(params["exceptionDetails"].get("text", "exception"))
    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        report.console_errors.append(
            " ".join(str(a.get("value", "")) for a in params.get("args", []))
        )
    elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
        report.console_errors.append(
            f"{params['entry'].get('url', '')}: {params['entry'].get('text')}"
        )
    elif method == "Network.requestWillBeSent":
        url = params["request"]["url"]
        if not url.startswith(("file:", "data:", "about:")):
            report.external_requests.append(url)
    elif method == "Network.loadingFailed":
        report.failed_requests.append(f"{params.get('errorText')} ({params.get('requestId')})")
    elif method == "Network.responseReceived" and params["response"].get("status", 200) >= 400:
        report.failed_requests.append(
            f"HTTP {params['response']['status']} {params['response']['url']}"
        )
