"""The README's Python examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 1
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    assert "b'hello from 9P\\n'" in capsys.readouterr().out
