"""Drive a headless Chromium over the DevTools protocol on a pipe: open a page, run JS in it, screenshot it.

``--dump-dom`` and ``--screenshot`` take the page as it loaded; the MLflow runs table nests a search's trials
under a collapsed parent row, so checking them takes one click first. ``--remote-debugging-pipe`` gives the
DevTools protocol on file descriptors 3 (commands in) and 4 (replies and events out), NUL-separated JSON:
no port, no websocket library, only the standard library.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

BINARY_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install it with `apt-get install -y chromium` (Debian/Ubuntu, as root) or set $CHROMIUM"


class BrowserError(RuntimeError):
    """Chromium failed to start, a DevTools command failed, or a page condition never came true."""


def find_chromium() -> str | None:
    """$CHROMIUM if set, else the first Chromium/Chrome binary on PATH."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return next((found for name in BINARY_NAMES if (found := shutil.which(name))), None)


class HeadlessChromium:
    """One headless browser with one page (a tab), attached over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, profile_dir: Path, width: int = 1600, height: int = 1000) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()

        def wire_pipes() -> None:  # in the child: the protocol's fds are 3 and 4
            high_in = fcntl.fcntl(commands_read, fcntl.F_DUPFD, 10)
            high_out = fcntl.fcntl(replies_write, fcntl.F_DUPFD, 10)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        self._log = (profile_dir.parent / "chromium.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--mute-audio",
                f"--user-data-dir={profile_dir}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            preexec_fn=wire_pipes,  # the only way to place the pipes at fds 3 and 4 in the child
            pass_fds=(3, 4),
            start_new_session=True,
        )
        os.close(commands_read)
        os.close(replies_write)
        self._buffer = b""
        self._next_id = 0
        try:
            self._session = self._attach_to_page()
            self.call("Page.enable")
            self.set_viewport(width, height)
        except BaseException:
            self.close()
            raise

    def _attach_to_page(self) -> str:
        targets = self.call("Target.getTargets", session=None)["targetInfos"]
        pages = [target for target in targets if target["type"] == "page"]
        if not pages:
            raise BrowserError(f"Chromium opened no page to attach to (targets: {targets})")
        reply = self.call("Target.attachToTarget", {"targetId": pages[0]["targetId"], "flatten": True}, None)
        return str(reply["sessionId"])

    _session = ""

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = "page",
        timeout: float = 60,
    ) -> dict[str, Any]:
        """Send one DevTools command and return its result (events that arrive meanwhile are dropped)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = self._session if session == "page" else session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline, method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"DevTools {method} failed: {reply['error']}")
                return dict(reply.get("result", {}))

    def _read_message(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise BrowserError(f"no reply from Chromium to {waiting_for} in time")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                status = self.process.poll()
                raise BrowserError(f"Chromium exited (status {status}) while waiting for {waiting_for}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def set_viewport(self, width: int, height: int) -> None:
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", metrics)

    def open(self, url: str) -> None:
        reply = self.call("Page.navigate", {"url": url})
        if reply.get("errorText"):
            raise BrowserError(f"Chromium could not open {url}: {reply['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        reply = self.call("Runtime.evaluate", params)
        if "exceptionDetails" in reply:
            raise BrowserError(f"JavaScript failed in the page: {reply['exceptionDetails'].get('text')}")
        return reply.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float, interval: float = 0.25) -> Any:
        """Poll a JavaScript expression until it is truthy and return its value ; None after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(interval)
        return None

    def rendered_html(self) -> str:
        """The page's DOM as it is now (what ``--dump-dom`` prints, after the scripts and clicks ran)."""
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", session=None, timeout=10)
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the group this browser started: its helpers too
            self.process.wait(timeout=10)
        self._log.close()
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> HeadlessChromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
