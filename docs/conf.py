"""Sphinx configuration: numpydoc docstrings (validated), autosummary pages for the API,
sphinx-gallery examples executed at build, sphinx-argparse for the CLI, MyST for the
Markdown pages. ``nox -s docs`` builds it with warnings as errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

import xpnet  # noqa: E402

project = "xpnet"
author = "xpnet developers"
copyright = "2026, xpnet developers"
version = release = xpnet.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinxarg.ext",
    "sphinx_gallery.gen_gallery",
    "sphinx_copybutton",
    "myst_parser",
    "results_tables",
    "im2col_figure",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "sg_execution_times.rst"]
templates_path = ["_templates"]
default_role = "py:obj"
nitpicky = False

# -- API reference: autosummary pages from the code, numpydoc sections, validated --------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False  # the class template lists members in full
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = {
    "GL08",  # the object has no docstring
    "PR01",  # a parameter is not documented
    "PR02",  # a documented parameter does not exist
    "RT01",  # no Returns section
    "YD01",  # no Yields section
    "SS01",  # no summary
    "GL06",  # an unknown section
    "GL07",  # sections in the wrong order
}
numpydoc_validation_exclude = {r"\.__init__$", r"\.__call__$"}

# -- The gallery: examples/ executed at build, figures captured -----------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "run_stale_examples": False,
    "matplotlib_animations": False,
    "write_computation_times": False,
}

# -- MyST: the Markdown pages (the benchmark history) ---------------------------------------
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # the history keeps its dated headings' levels


html_theme = "pydata_sphinx_theme"
html_title = f"xpnet {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path: list[str] = []
html_show_sourcelink = False
html_sidebars = {"index": [], "auto_examples/index": []}

# -- The API pages: one per public module, its names read from its __all__ ------------------
API_MODULES = {
    "xpnet": "Backends, conversion between array libraries, the kernels switch.",
    "xpnet.nn": "Layers, losses and containers: thin holders of parameters around the maths.",
    "xpnet.functional": "The one definition of every op: forward, saved state and backward.",
    "xpnet.optim": "Optimizers and learning-rate schedules (PyTorch's formulas).",
    "xpnet.init": "Weight initialisation from a seeded NumPy generator.",
    "xpnet.models": "Ready-made nets for MNIST-sized images.",
    "xpnet.train": "The training loop (``fit``) and its history.",
    "xpnet.inference": "Evaluation and prediction in eval and inference mode.",
    "xpnet.checkpoint": "Checkpoints: saved atomically, read as untrusted input.",
    "xpnet.datasets": "MNIST (shipped inside the package), scikit-learn's digits, IDX files.",
    "xpnet.augment": "Random shifts applied on the device.",
    "xpnet.distributed": "Data-parallel training over MPI (and NCCL between GPUs).",
    "xpnet.compiled": "The whole training step compiled by ``jax.jit``.",
    "xpnet.onnx": "Export to ONNX.",
    "xpnet.sklearn": "A scikit-learn classifier around all of the above.",
    "xpnet.plots": "Training curves and confusion matrices.",
    "xpnet.kernels": "The registry of optional faster kernels and its switch.",
}


def _write_api_pages() -> None:
    """Write ``api/<module>.rst`` for each public module: its docstring, then an
    autosummary table (one generated page per name) of everything in its ``__all__``."""
    import importlib
    import inspect

    for name, summary in API_MODULES.items():
        module = importlib.import_module(name)
        public = [n for n in module.__all__ if not inspect.ismodule(getattr(module, n))]
        lines = [f"``{name}``", "=" * (len(name) + 4), "", summary, "",
                 f".. automodule:: {name}", "   :no-members:", "",
                 f".. currentmodule:: {name}", "", ".. autosummary::", "   :toctree: generated/", ""]  # fmt: skip
        lines += [f"   {n}" for n in sorted(public, key=str.lower)]
        page = DOCS / "api" / f"{name}.rst"
        text = "\n".join(lines) + "\n"
        if not page.exists() or page.read_text() != text:
            page.write_text(text)


_write_api_pages()


def _skip_members(app, what, name, obj, skip, options):
    """Leave out of a class's page: named tuples' fields (its Parameters describe them) and
    methods without a docstring of their own that override a documented one (a layer's
    ``forward``, ``backward``, ``config``...: :class:`xpnet.nn.Module`'s page documents the
    protocol). Any other public member without a docstring still fails the build."""
    doc = getattr(obj, "__doc__", None) or ""
    if doc.startswith("Alias for field number"):
        return True
    function = getattr(obj, "__func__", obj)
    if callable(function) and getattr(function, "__doc__", None) is None:
        qualname = getattr(function, "__qualname__", "")
        owner = sys.modules.get(getattr(function, "__module__", ""), None)
        cls = owner
        for part in qualname.split(".")[:-1]:
            cls = getattr(cls, part, None)
        if isinstance(cls, type) and any(
            getattr(getattr(base, name, None), "__doc__", None) for base in cls.__mro__[1:]
        ):
            return True
    return None


def _data_docstring(app, what, name, obj, options, lines):
    """A constant re-exported from a private module (``xpnet.BACKENDS`` from
    ``xpnet._backend``) gets the docstring written under its definition, not its type's."""
    if what not in ("data", "attribute") or not name.startswith("xpnet."):
        return
    from sphinx.pycode import ModuleAnalyzer

    attr = name.rsplit(".", 1)[1]
    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith("xpnet") or getattr(module, attr, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # a module without source: nothing to read
            continue
        if ("", attr) in docs:
            lines[:] = [line for line in docs["", attr] if line is not None]
            return


def setup(app):
    app.connect("autodoc-skip-member", _skip_members)
    app.connect("autodoc-process-docstring", _data_docstring, priority=100)
