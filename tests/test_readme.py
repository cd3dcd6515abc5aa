"""The README's example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_example_runs(capsys):
    blocks = python_blocks()
    assert blocks, "README has no python example"
    example = blocks[0]
    assert len(example.strip().splitlines()) <= 16
    exec(compile(example, str(README), "exec"), {})
    first = capsys.readouterr().out
    assert re.match(r"loss \d+\.\d{4}", first)
    exec(compile(example, str(README), "exec"), {})
    assert capsys.readouterr().out == first  # every layer seeded: the same loss each run


@pytest.mark.slow  # a grid search: about 15 s
def test_readme_scikit_learn_example_runs(capsys):
    example = next(block for block in python_blocks() if "CNNClassifier" in block)
    assert len(example.strip().splitlines()) <= 10
    exec(compile(example, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert re.match(r"\{'cnnclassifier__lr': [\d.e-]+\} 0\.9\d\d", out), out
