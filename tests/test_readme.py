"""The README's example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_readme_scikit_learn_example_is_the_gallerys():
    """The README's grid search (about 20 s) runs where the documentation is built (its
    gallery's first cell, the same code): ``nox`` runs it there, beside the tests."""
    example = next(block for block in python_blocks() if "CNNClassifier" in block)
    assert len(example.strip().splitlines()) <= 10
    gallery = README.parent / "examples" / "plot_5_grid_search.py"
    assert example.strip() in gallery.read_text()
