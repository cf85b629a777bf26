"""Runs the shim's Node tests (tests/js, node --test) against the built dist/."""

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_shim_node_tests_pass():
    assert (ROOT / "dist-busybox/manifest.json").is_file(), "dist/ is not built: run ./build.sh"
    node = shutil.which("node")
    assert node, "node is not installed"
    proc = subprocess.run([node, "--test", str(ROOT / "tests/js/shim.test.mjs")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYNINEP_DIST": str(ROOT / "dist-busybox")})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    counts = dict(re.findall(r"^# (tests|pass|fail) (\d+)$", proc.stdout, re.M))
    assert counts.get("fail") == "0" and counts.get("pass") == counts.get("tests"), proc.stdout[-2000:]
    assert int(counts["tests"]) >= 6, "the shim's tests did not all run"
