"""Convenience re-exports: ``worldmodels.data`` and ``worldmodels.eval`` give their main names lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import worldmodels.data
import worldmodels.eval


@pytest.mark.parametrize("package", [worldmodels.data, worldmodels.eval])
def test_every_lazy_name_resolves_to_the_object_its_module_defines(package) -> None:
    import importlib

    for name, module in package._LAZY.items():
        assert name in package.__all__
        assert getattr(package, name) is getattr(importlib.import_module(module), name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'ClipDataSet'"):
        worldmodels.data.ClipDataSet  # noqa: B018


def test_importing_the_packages_loads_no_heavy_module() -> None:
    code = (
        "import sys, worldmodels.data, worldmodels.eval\n"
        "heavy = [m for m in ('worldmodels.data.recorders', 'worldmodels.eval.evaluation', 'av') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from worldmodels.data import ClipDataset\n"
        "from worldmodels.eval import evaluate\n"
        "assert 'worldmodels.eval.evaluation' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
