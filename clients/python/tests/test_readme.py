"""The README's example, run as written against a real broker."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import PYTHON_DIR, Broker, Yard

README = (PYTHON_DIR / "README.md").read_text()


def _block_after(heading: str, language: str) -> str:
    section = README.split(heading, 1)[1]
    match = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert match, f"no {language} block after {heading!r}"
    return match.group(1)


def test_readme_example_runs(broker: Broker, procs: Yard, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(_block_after("## Example", "python"))
    process = procs.python(str(script), env={"YARD_BROKER": broker.endpoint})
    assert process.wait(30) == 0, process.output()
    assert process.output() == _block_after("It prints:", "text")
