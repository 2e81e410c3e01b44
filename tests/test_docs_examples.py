"""Runs every Python code block of README.md and docs/*.md, the product's face.

The blocks of one file run in order in one fresh interpreter (later blocks use
what earlier ones defined, as a reader would), in a scratch directory. A block
right after an ``<!-- skip-test: reason -->`` line is left out; keep those few.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- skip-test:[^>]*-->\s*\n)?```python\n(.*?)```", re.S)


def python_blocks(path) -> list[str]:
    """The runnable Python blocks of a Markdown file, in order."""
    return [code for skip, code in BLOCK.findall(path.read_text()) if not skip]


def test_the_extractor_finds_and_skips_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\na = 1\n```\n<!-- skip-test: needs a GPU -->\n```python\nb = 2\n```\n"
        "```bash\nls\n```\n```python\nc = a\n```\n"
    )
    assert python_blocks(page) == ["a = 1\n", "c = a\n"]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_code_blocks_run(path, tmp_path):
    blocks = python_blocks(path)
    if not blocks:
        pytest.skip(f"{path.name} has no Python blocks")
    script = ["import sys"]
    for number, code in enumerate(blocks, 1):
        script.append(f"print('--- block {number}', flush=True)")
        script.append(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(
        [sys.executable, "-c", "\n".join(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    ran = re.findall(r"--- block (\d+)", out.stdout)
    failed_at = ran[-1] if ran else "?"
    assert out.returncode == 0, (
        f"{path.name}: block {failed_at} of {len(blocks)} failed:\n{out.stderr[-4000:]}"
    )
    assert len(ran) == len(blocks)
