"""Headless Chromium driven over the DevTools protocol: load a page, let it fetch and render in real
time, then read its text and take a screenshot. (`--screenshot` alone fires before a single-page app
has fetched its data.)"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from dataflux.llm.server import free_port


class Browser:
    def __init__(self, width: int = 1400, height: int = 1800):
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            raise RuntimeError("headless Chromium is needed: apt-get install chromium")
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.proc = subprocess.Popen([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                      f"--window-size={width},{height}", f"--remote-debugging-port={self.port}",
                                      "--remote-allow-origins=*", f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json") as r:
                    targets = json.load(r)
                self.ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                break
            except (OSError, StopIteration):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        from websockets.sync.client import connect

        self.ws = connect(self.ws_url, max_size=64 << 20)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def text(self) -> str:
        reply = self.call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)
        return reply["result"]["value"]

    def open(self, url: str, wait_for: str | None = None, timeout: float = 60) -> str:
        """Navigate, then wait until the page's text holds `wait_for` (or the timeout); return the text."""
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        deadline = time.time() + timeout
        text = ""
        while time.time() < deadline:
            time.sleep(1)
            text = self.text()
            if wait_for is None or wait_for in text:
                time.sleep(1)  # let the last fetched data paint
                return self.text()
        return text

    def click_text(self, label: str) -> None:
        """Click the first button or tab whose text is exactly `label`."""
        js = ("(() => { const el = [...document.querySelectorAll('button, [role=tab], a, li')]"
              f".find(e => e.innerText.trim() === {json.dumps(label)}); if (el) el.click(); return !!el; }})()")
        if not self.call("Runtime.evaluate", expression=js, returnByValue=True)["result"]["value"]:
            raise RuntimeError(f"nothing labelled {label!r} to click")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
