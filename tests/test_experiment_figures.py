"""docs/experiments.rst's figures are drawn from the committed measurements by a script that runs."""

from __future__ import annotations

import runpy
from pathlib import Path

from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "_experiments" / "make_figures.py"


def test_experiment_figures_are_drawn_from_results_json(tmp_path: Path) -> None:
    written = runpy.run_path(str(SCRIPT))["main"](tmp_path)
    assert [p.name for p in written] == ["gen_psnr_vs_steps.png", "delta_psnr_vs_steps.png"]
    for path in written:
        with Image.open(path) as image:
            assert image.size == (640, 400)
        committed = SCRIPT.parents[1] / "_static" / "experiments" / path.name
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: rerun {SCRIPT}"
