"""Sphinx configuration of the worldmodels documentation (builds offline, warnings are errors in CI)."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

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
# Interface methods open their docstrings with a shape line such as
# "encode(video: B T C H W float) -> tokens: B T h w int64."; show it as text under the real
# signature instead of letting autodoc take it for the signature.
autodoc_docstring_signature = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Cross-references to Python, PyTorch, NumPy, Gymnasium and Pillow without the network: the
# inventories in docs/_inventories/ are written by docs/_inventories/make_inventories.py (no
# download); a missing one is skipped.
_inv = Path(__file__).parent / "_inventories"
_targets = {
    "python": "https://docs.python.org/3",
    "torch": "https://docs.pytorch.org/docs/stable",
    "numpy": "https://numpy.org/doc/stable",
    "gymnasium": "https://gymnasium.farama.org",
    "PIL": "https://pillow.readthedocs.io/en/stable",
}
intersphinx_mapping = {
    name: (url, str(_inv / f"{name}.inv")) for name, url in _targets.items() if (_inv / f"{name}.inv").is_file()
}

nitpicky = False
suppress_warnings = ["config.cache"]
templates_path = ["_templates"]
exclude_patterns = ["_build", "_inventories", "api/generated/*.rst.bak"]
html_theme = "furo"
html_title = f"worldmodels {release}"
html_static_path: list[str] = []

_OUR_PACKAGES = ("worldmodels", "worldmodels_genie")


def _patch_autosummary_module_lookup() -> None:
    """Make autosummary document ``worldmodels.build`` and ``worldmodels.eval.fvd`` as modules.

    Both packages re-export a function with the same name as the module that defines it
    (``worldmodels.build`` is the function once ``worldmodels`` is imported). autosummary looks a
    dotted name up as ``getattr(parent, leaf)`` before trying it as a module, so it would write a
    page for the function and leave the rest of the module undocumented. Names of our packages
    that are modules are imported as modules first.
    """
    import importlib.util

    from sphinx.ext import autosummary

    original = autosummary._import_by_name

    def modules_first(name: str, grouped_exception: bool = True) -> tuple[Any, Any, str]:
        if name.split(".")[0] in _OUR_PACKAGES:
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            if spec is not None:
                return importlib.import_module(name), None, name
        return original(name, grouped_exception)

    autosummary._import_by_name = modules_first


_patch_autosummary_module_lookup()


def _import_path(dotted: str) -> Any:
    """The object a dotted path names (module, class, function or method), or ``None``."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _canonical(dotted: str) -> str | None:
    """Where a re-exported name is documented: ``worldmodels.WorldModel`` -> ``worldmodels.world_model.WorldModel``."""
    obj = _import_path(dotted)
    if obj is None:
        return None
    if isinstance(obj, type(sys)):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if module and qualname and "<" not in qualname:
        return f"{module}.{qualname}"
    owner, _, attr = dotted.rpartition(".")  # a property or attribute: canonical owner + name
    owner_canonical = _canonical(owner) if owner else None
    return f"{owner_canonical}.{attr}" if owner_canonical else None


def _resolve_reexports(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Link references to re-exported or module-relative names of our packages to their documented home.

    Docstrings say ``worldmodels.WorldModel`` (the public name) and ``:func:`psnr``` inside a package
    that re-exports it; autodoc documents each object once, under the module that defines it.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    module, klass = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module and not target.startswith(_OUR_PACKAGES):
        if klass:
            candidates.append(f"{module}.{klass}.{target}")
        candidates.append(f"{module}.{target}")
    for candidate in candidates:
        if candidate.split(".")[0] not in _OUR_PACKAGES:
            continue
        canonical = _canonical(candidate)
        if canonical is None or canonical == target:
            continue
        domain = env.get_domain("py")
        found = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical, node, contnode)
        if found is not None:
            return found
    return None


def setup(app: Any) -> dict[str, Any]:
    """Register the re-export resolver (after intersphinx, which handles the other projects)."""
    app.connect("missing-reference", _resolve_reexports, priority=900)
    return {"parallel_read_safe": True}
