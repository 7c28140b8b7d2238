"""Sphinx configuration of the worldmodels documentation (builds offline, warnings are errors in CI)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins" / "genie"))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import worldmodels  # noqa: E402

project = "worldmodels"
author = "the worldmodels developers"
copyright = "2026, the worldmodels developers"
release = worldmodels.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.doctest",
]

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource", "ignore-module-all": True}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Cross-references to PyTorch, NumPy, gymnasium and Python without the network: inventories are
# read from docs/_inventories/ when present there, and skipped cleanly otherwise.
_inv = Path(__file__).parent / "_inventories"
_targets = {
    "python": "https://docs.python.org/3",
    "torch": "https://pytorch.org/docs/stable",
    "numpy": "https://numpy.org/doc/stable",
    "gymnasium": "https://gymnasium.farama.org",
}
intersphinx_mapping = {
    name: (url, str(_inv / f"{name}.inv")) for name, url in _targets.items() if (_inv / f"{name}.inv").is_file()
}
intersphinx_disabled_reftypes = ["*"]

nitpicky = False
suppress_warnings = ["config.cache"]
templates_path = ["_templates"]
exclude_patterns = ["_build", "api/generated/*.rst.bak"]
html_theme = "furo"
html_title = f"worldmodels {release}"
html_static_path: list[str] = []
