"""The Sphinx documentation builds offline with warnings as errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_sphinx_build_has_no_warnings(tmp_path: Path) -> None:
    pytest.importorskip("sphinx")
    pytest.importorskip("furo")
    generated = REPO / "docs" / "api" / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(REPO / "docs"),
         str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, f"sphinx-build -W failed:\n{out.stdout}\n{out.stderr}"
