"""Draw the figures of docs/experiments.rst from the measurements in results.json.

    python docs/_experiments/make_figures.py          # writes docs/_static/experiments/*.png

The pictures of a trained model (reconstructions, latent actions) are copied from a demo run's
``eval/`` folder instead; see docs/experiments.rst for the command that produced them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "_static" / "experiments"


def main(out: Path = OUT) -> list[Path]:
    """Write every figure; returns their paths."""
    from worldmodels.eval.figures import draw_curve

    results = json.loads((HERE / "results.json").read_text())
    curve = results["dynamics_steps"]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    image = draw_curve(
        curve["steps"],
        curve["gen_psnr_t4"],
        title="Generated PSNR at t=4 (48 held-out clips, inferred latent actions) against dynamics steps\n"
        f"copying frame 0 scores {curve['copy_frame0_psnr_t4']:.1f} dB; the target is 22 dB",
        xlabel="dynamics steps (batch 8, about 0.3 s each on 2 cores)",
        ylabel="PSNR at t=4 (dB)",
    )
    path = out / "gen_psnr_vs_steps.png"
    image.save(path)
    written.append(path)
    image = draw_curve(
        curve["steps"],
        curve["delta_psnr_t4"],
        band_low=[m - s for m, s in zip(curve["delta_psnr_t4"], curve["delta_psnr_t4_sem"])],
        band_high=[m + s for m, s in zip(curve["delta_psnr_t4"], curve["delta_psnr_t4_sem"])],
        title="Delta_t PSNR at t=4 against dynamics training steps\nband: one standard error over 48 clips",
        xlabel="dynamics steps",
        ylabel="Delta_t PSNR at t=4 (dB)",
    )
    path = out / "delta_psnr_vs_steps.png"
    image.save(path)
    written.append(path)
    return written


if __name__ == "__main__":
    for written_path in main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(written_path)
