"""Drive the real guest (v86 + our server in Pyodide, under Node) from pytest: tests/e2e/harness.mjs."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist-busybox"  # the tests' site (./build.sh test builds it); dist/ is the Debian one
DEBIAN_DIST = ROOT / "dist"


def _node_major(node: str) -> int:
    out = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    return int(out.strip().lstrip("v").split(".")[0] or 0)


class GuestError(RuntimeError):
    pass


class Guest:
    """One booted guest. ``run(script)`` returns (status, output) of a shell script run in it."""

    def __init__(self, *extra_args: str, boot_timeout: float = 180) -> None:
        if not (DIST / "manifest.json").is_file():
            raise GuestError("dist/ is not built: run ./build.sh")
        node = shutil.which("node")
        if node is None:
            raise GuestError("node is not installed")
        flags = []
        if ("--proxy" in extra_args or "--server" in extra_args) and _node_major(node) < 22:
            flags.append("--experimental-websocket")  # v86's proxy_url needs a global WebSocket
        self.proc = subprocess.Popen(
            [node, *flags, str(ROOT / "tests/e2e/harness.mjs"), str(DIST), *extra_args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1, env={**os.environ, "NODE_NO_WARNINGS": "1"})
        self._stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        self._id = 0
        self.info = self._read(boot_timeout)
        if not self.info.get("ready"):
            raise GuestError(f"guest did not boot: {self.info}; stderr: {self.stderr[-2000:]}")

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def _read(self, timeout: float) -> dict:
        assert self.proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not result or not result[0]:
            self.close()
            raise GuestError(f"no answer from the harness in {timeout} s; stderr: {self.stderr[-2000:]}")
        msg = json.loads(result[0])
        if "fatal" in msg:
            raise GuestError(msg["fatal"])
        return msg

    def request(self, op: str, wait: float = 120, **fields) -> dict:
        self._id += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": self._id, "op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        msg = self._read(wait + 10)
        if "error" in msg:
            raise GuestError(msg["error"])
        return msg

    def run(self, script: str, timeout: float = 60) -> tuple[int, str]:
        msg = self.request("run", wait=timeout, script=script, timeout=int(timeout * 1000))
        return msg["status"], msg["output"]

    def sh(self, script: str, timeout: float = 60) -> str:
        """Run and expect success; returns the output."""
        status, out = self.run(script, timeout)
        if status != 0:
            raise AssertionError(f"exit {status} from {script!r}:\n{out}")
        return out

    def read_file(self, path: str) -> bytes:
        return base64.b64decode(self.request("readFile", path=path)["data"])

    def write_file(self, path: str, data: bytes) -> None:
        self.request("writeFile", path=path, data=base64.b64encode(data).decode())

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
