"""The end-to-end demo, shortened: record CoinRun, train both stages, evaluate, play; and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import worldmodels

pytest.importorskip("procgen", reason="the demo records CoinRun (pip install 'worldmodels[coinrun]')")
if "genie-tiny" not in worldmodels.list_components("model"):
    pytest.skip("the demo's recipe comes from the Genie plug-in", allow_module_level=True)

TINY = [
    "demo.record.episodes=12", "demo.record.frames_per_episode=24", "demo.eval.max_clips=4",
    "train.per_stage.tokenizer.steps=3", "train.per_stage.lam.steps=3", "train.per_stage.dynamics.steps=3",
    "demo.baseline.steps=3",
    "train.checkpoint_every=2",
    "train.progress=false", "train.tensorboard=false", "train.log_every=1",
]


def _gif_frames(path: Path) -> np.ndarray:
    from PIL import Image, ImageSequence

    with Image.open(path) as gif:
        return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)])


def test_shortened_demo_runs_end_to_end_and_resumes(tmp_path: Path, capsys) -> None:
    from worldmodels.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "Delta_t PSNR (t=4)" in printed and str(out / "eval" / "report.md") in printed
    for name in ("data/manifest.json", "run/tokenizer/final/model.safetensors", "run/dynamics/final/model.safetensors",
                 "eval/report.json", "eval/report.md", "eval/reconstruction.png", "eval/latent_actions.png",
                 "eval/delta_psnr.png", "play.gif", "latent_actions.gif", "summary.json"):
        assert (out / name).is_file(), f"the demo did not write {name}"
    summary = json.loads((out / "summary.json").read_text())
    assert 1 <= summary["headline"]["num_clips"] <= 4 and "nmi" in summary["headline"]
    assert summary["baseline"] and summary["headline"]["baseline_delta_psnr_t4"] is not None  # recorded actions
    assert "Recorded-action baseline" in (out / "eval" / "report.md").read_text()
    assert list((out / "token_cache").glob("tokens-*.npy"))  # one token cache, shared by both dynamics runs
    assert len(_gif_frames(out / "play.gif")) > 1

    # a second run finds everything done: nothing is recorded or trained again
    before = (out / "run" / "dynamics" / "final" / "model.safetensors").stat().st_mtime
    assert main(["demo", "--out", str(out), *TINY]) == 0
    assert "reusing it" in capsys.readouterr().out
    assert (out / "run" / "dynamics" / "final" / "model.safetensors").stat().st_mtime == before

    # the same folder with another recording setting is refused, not silently reused
    assert main(["demo", "--out", str(out), *TINY, "demo.record.options.action_repeat=3"]) == 2
    err = capsys.readouterr().err
    assert "(the recipe asks 3)" in err and "action_repeat=" in err and "--out" in err
    assert (out / "run" / "dynamics" / "final" / "model.safetensors").stat().st_mtime == before


@pytest.mark.slow
@pytest.mark.timeout(1500)  # real training: 596 s on a 2-core AVX2-only AMD EPYC (fp32), past the 600 s default there
def test_trained_world_responds_to_its_latent_actions(tmp_path: Path) -> None:
    """After a short real training run, headless play from the same held-out prompt under each
    latent action gives GIFs whose frames clearly differ between actions."""
    from test_play import play_gif_frames

    from worldmodels.demo import run_demo

    longer = [o for o in TINY if "steps" not in o and "episodes" not in o] + [
        "demo.record.episodes=60", "train.per_stage.tokenizer.steps=120", "train.per_stage.lam.steps=100",
        "train.per_stage.dynamics.steps=200",
        "demo.baseline.enabled=false",
    ]
    result = run_demo(tmp_path / "demo", longer)
    prompt = tmp_path / "prompt.png"
    from PIL import Image

    Image.fromarray(_gif_frames(result.play)[0]).save(prompt)
    num_actions = worldmodels.WorldModel.from_pretrained(result.model).num_actions
    last = np.stack([
        play_gif_frames(result.model, [a] * 4, tmp_path / f"a{a}.gif", str(prompt))[-1].astype(np.float64)
        for a in range(num_actions)
    ])
    differences = [np.abs(last[a] - last[b]).mean() for a in range(num_actions) for b in range(a + 1, num_actions)]
    assert max(differences) > 4.0, f"frames barely differ across latent actions: {max(differences):.2f}/255"
