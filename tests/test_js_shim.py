"""Runs the shim's Node tests (tests/js, node --test) against the built dist/."""

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_shim_node_tests_pass():
    assert (ROOT / "dist/manifest.json").is_file(), "dist/ is not built: run ./build.sh"
    node = shutil.which("node")
    assert node, "node is not installed"
    proc = subprocess.run([node, "--test", str(ROOT / "tests/js/shim.test.mjs")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYNINEP_DIST": str(ROOT / "dist")})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "# fail 0" in proc.stdout and "# pass 5" in proc.stdout, proc.stdout[-2000:]
