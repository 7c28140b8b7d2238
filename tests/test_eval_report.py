"""``worldmodels eval`` and :func:`worldmodels.eval.evaluation.evaluate`: files, numbers, pictures, CLI."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import toy_components  # noqa: F401  (registers the toy-world preset)
from PIL import Image

import worldmodels
from worldmodels.checkpoint import CheckpointError
from worldmodels.cli import main
from worldmodels.data.clips import ClipDataset
from worldmodels.data.shards import Episode, ShardWriter
from worldmodels.data.synthetic import ACTION_NAMES, moving_sprites
from worldmodels.eval import FVDResult, psnr
from worldmodels.eval.evaluation import LATENT_FIGURE_PROMPTS, evaluate
from worldmodels.eval.figures import upscale
from worldmodels.eval.ground_truth import ground_truth_metrics
from worldmodels.eval.report import FIGURE_FILES, EvalReport, resolve_checkpoint

HORIZON = 3  # toy-world clips have 4 frames
FIGURE_CLIPS = 2
LATENT_STEPS = 3


@pytest.fixture(scope="module")
def sprite_data(tmp_path_factory) -> Path:
    """A recorded-like data set of the sprite world: 2 train and 4 test episodes of 12 frames, 16x16.

    One test episode has two unknown actions (-1), which the latent-action metrics must leave out.
    """
    root = tmp_path_factory.mktemp("sprites")
    clips = moving_sprites(6, num_frames=12, image_size=16, seed=3)
    frames = clips.frames_uint8()
    metadata = {"env": {"name": "sprites", "kind": "synthetic", "num_actions": 5, "action_names": list(ACTION_NAMES)}}
    with ShardWriter(root, metadata) as writer:
        for i in range(6):
            actions = np.concatenate([clips.actions[i].numpy(), [-1]])
            if i == 5:
                actions[[1, 6]] = -1
            writer.add("train" if i < 2 else "test", Episode(frames[i], actions, level_seed=i))
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A training run directory with a finished dynamics stage (and a tokenizer stage)."""
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    model = worldmodels.build("toy-world")
    with torch.no_grad():
        model.dynamics.act.weight.mul_(20.0)  # make the untrained dynamics respond to its actions
    model.save_pretrained(run / "tokenizer" / "final")
    model.save_pretrained(run / "dynamics" / "final")
    return run


@pytest.fixture(scope="module")
def evaluated(sprite_data: Path, run_dir: Path, tmp_path_factory) -> tuple[EvalReport, Path]:
    out = tmp_path_factory.mktemp("report")
    report = evaluate(
        run_dir / "dynamics" / "final",
        sprite_data,
        split="test",
        max_clips=None,
        horizon=HORIZON,
        batch_size=5,
        seed=0,
        out_dir=out,
        figure_clips=FIGURE_CLIPS,
        latent_steps=LATENT_STEPS,
        random_trials=20,
    )
    return report, out


def _test_clips(sprite_data: Path) -> ClipDataset:
    return ClipDataset(sprite_data, num_frames=4, image_size=16, split="test")


def test_report_json_has_every_section_with_sane_values(evaluated, sprite_data: Path) -> None:
    report, out = evaluated
    for name in ("report.json", "report.md", *FIGURE_FILES):
        assert (out / name).is_file(), name
    data = json.loads((out / "report.json").read_text())
    assert data["format"] == "worldmodels-eval-report"
    for key in ("headline", "settings", "reconstruction", "controllability", "latent_actions", "codebooks", "fvd",
                "timings", "notes", "figures", "files"):
        assert key in data, key

    dataset = _test_clips(sprite_data)
    n = len(dataset)  # 4 episodes x 3 clips
    assert n == 12 and data["settings"]["num_clips"] == n and data["settings"]["horizon"] == HORIZON

    rec = data["reconstruction"]
    assert rec["psnr"]["n"] == n and len(rec["psnr_per_frame"]) == 4
    assert 0 < rec["psnr"]["mean"] < 100 and rec["psnr"]["std"] > 0
    assert rec["psnr"]["sem"] == pytest.approx(rec["psnr"]["std"] / math.sqrt(n))
    assert -1 <= rec["ssim"]["mean"] <= 1

    control = data["controllability"]
    assert control["t"] == [1, 2, 3] and control["num_clips"] == n
    assert len(control["delta_psnr_t"]) == len(control["delta_psnr_sem_t"]) == HORIZON
    assert control["at_paper_t"] is None  # horizon 3 < 4, and the report says so
    assert any("t=4" in note for note in data["notes"])
    assert control["mean_over_t"]["n"] == n
    assert control["mean_over_t"]["mean"] == pytest.approx(np.mean(control["delta_psnr_t"]))

    latent = data["latent_actions"]
    assert latent["num_transitions"] == n * 3
    assert sum(latent["usage"]["counts"]) == n * 3
    assert sum(latent["usage"]["fraction"]) == pytest.approx(1.0)
    assert 0 <= latent["usage"]["normalized_entropy"] <= 1
    truth = latent["ground_truth"]
    assert truth["available"] and truth["action_names"] == list(ACTION_NAMES)
    labelled = sum(int((dataset[i]["actions"] >= 0).sum()) for i in range(n))
    assert labelled == n * 3 - 2  # the two unknown actions of episode 5 are left out
    assert truth["num_labelled_transitions"] == labelled
    table = np.array(truth["contingency_table"])
    assert table.shape == (4, 5) and table.sum() == labelled
    assert 0.0 <= truth["nmi"] <= 1.0 and 0.0 <= truth["nmi_random"]["mean"] <= 1.0
    assert truth["nmi_random"]["trials"] == 20 and 0 < truth["nmi_random"]["p_value"] <= 1
    probe = truth["probe"]
    assert probe["available"] and 0 <= probe["accuracy"] <= 1 and 0 < probe["chance_accuracy"] <= 1
    assert probe["num_fit"] + probe["num_scored"] == labelled and len(probe["mapping_names"]) == 4

    tok, lam = data["codebooks"]["tokenizer"], data["codebooks"]["lam"]
    assert tok["num_codes"] == 16 and tok["num_indices"] == n * 4 * 4 * 4  # clips x frames x 4x4 tokens
    assert 1 <= tok["perplexity"] <= 16 and lam["num_codes"] == 4 and lam["counts"] == latent["usage"]["counts"]

    fvd = data["fvd"]
    assert fvd["skipped"] and fvd["value"] is None and "I3D" in fvd["reason"] and "--fvd-weights" in fvd["reason"]
    assert data["headline"]["fvd"] is None and data["headline"]["nmi"] == truth["nmi"]

    for step in ("load_model", "load_data", "reconstruction", "latent_actions", "delta_psnr", "fvd", "figures",
                 "total"):
        assert data["timings"][step] >= 0, step
    assert data["settings"]["checkpoint"].endswith(os.path.join("dynamics", "final"))
    assert data["settings"]["split"] == "test" and data["settings"]["seed"] == 0


def test_reconstruction_numbers_match_a_direct_computation(evaluated, run_dir: Path, sprite_data: Path) -> None:
    report, _ = evaluated
    model = worldmodels.WorldModel.from_pretrained(run_dir / "dynamics" / "final").eval()
    dataset = _test_clips(sprite_data)
    video = torch.stack([dataset[i]["video"] for i in range(len(dataset))])
    with torch.no_grad():
        per_clip = psnr(video, model.decode(model.encode(video)), reduction="none").double().mean(dim=1)
    reported = torch.tensor(report.reconstruction["per_clip"]["psnr"], dtype=torch.float64)
    assert torch.allclose(reported, per_clip, atol=1e-4)
    assert report.reconstruction["psnr"]["mean"] == pytest.approx(float(per_clip.mean()), abs=1e-4)


def test_report_md_has_the_headline_and_contingency_tables(evaluated) -> None:
    report, out = evaluated
    md = (out / "report.md").read_text()
    assert "| metric | value | spread / baseline | n |" in md
    for row in ("| Reconstruction PSNR (dB) |", "| Reconstruction SSIM |", "| Delta_t PSNR at t=4 (dB, the paper's) |",
                "| Delta_t PSNR, mean over t=1..3 (dB) |", "| Latent-action NMI |", "| Probe accuracy",
                "| Tokenizer codebook usage |", "| LAM codebook usage |", "| FVD | skipped |"):
        assert row in md, row
    assert f"{report.headline()['recon_psnr']:.2f}" in md
    assert "| latent \\ true | stay | left | right | up | down | total |" in md
    total_row = next(line for line in md.splitlines() if line.startswith("| total |"))
    assert total_row.endswith(f"| {report.latent_actions['ground_truth']['num_labelled_transitions']} |")
    assert "![" in md and "reconstruction.png" in md
    summary = report.summary()
    assert "PSNR" in summary and "NMI" in summary and "FVD skipped" in summary and "12 clip(s)" in summary


def test_pictures_open_and_have_the_expected_grids(evaluated, sprite_data: Path) -> None:
    report, out = evaluated
    dataset = _test_clips(sprite_data)
    prompt = (dataset[0]["video"][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    layout = report.figure_layouts["reconstruction.png"]
    assert (layout["rows"], layout["cols"]) == (3 * FIGURE_CLIPS, HORIZON + 1)  # real/recon/generated per clip
    scale = layout["scale"]
    assert scale * 16 >= 64 and (layout["cell_height"], layout["cell_width"]) == (16 * scale, 16 * scale)
    with Image.open(out / "reconstruction.png") as image:
        assert image.format == "PNG" and list(image.size) == layout["size"]
        pixels = np.asarray(image.convert("RGB"))
    real = upscale(prompt, scale)
    for row in (0, 2):  # the real frame 0, and the generated row's prompt, are the clip's first frame
        x0, y0 = layout["left"] + 0, layout["top"] + row * (layout["cell_height"] + layout["gap"])
        assert np.array_equal(pixels[y0 : y0 + 16 * scale, x0 : x0 + 16 * scale], real)

    layout = report.figure_layouts["latent_actions.png"]
    prompts = min(LATENT_FIGURE_PROMPTS, report.settings["num_clips"])
    assert (layout["rows"], layout["cols"]) == (4, prompts * (LATENT_STEPS + 1))  # a row per latent, a group per prompt
    with Image.open(out / "latent_actions.png") as image:
        assert list(image.size) == layout["size"]
        pixels = np.asarray(image.convert("RGB"))
    for row in range(4):  # every row starts from the same prompt frame
        y0 = layout["top"] + row * (layout["cell_height"] + layout["gap"])
        x0 = layout["left"]
        assert np.array_equal(pixels[y0 : y0 + layout["cell_height"], x0 : x0 + layout["cell_width"]], real)

    with Image.open(out / "delta_psnr.png") as image:
        assert image.size == (640, 400) and list(image.size) == report.figure_layouts["delta_psnr.png"]["size"]
        plot = np.asarray(image.convert("RGB"))
    assert (plot != 255).any(axis=-1).mean() > 0.02  # axes, ticks, band and curve were drawn


def test_evaluation_is_reproducible_for_a_seed(evaluated, run_dir: Path, sprite_data: Path) -> None:
    report, _ = evaluated
    again = evaluate(run_dir, sprite_data, max_clips=None, horizon=HORIZON, batch_size=5, seed=0,
                     figure_clips=FIGURE_CLIPS, latent_steps=LATENT_STEPS, random_trials=20)
    assert again.settings["checkpoint"] == report.settings["checkpoint"]  # the run dir resolves to dynamics/final
    first, second = report.to_dict(), again.to_dict()
    for key in ("reconstruction", "controllability", "latent_actions", "codebooks"):
        assert first[key] == second[key], key
    for name in ("latent_actions.png", "reconstruction.png"):
        assert np.array_equal(np.asarray(report.figures[name]), np.asarray(again.figures[name])), name


def test_ground_truth_metrics_reward_informative_latents_and_skip_unknown_actions() -> None:
    gen = torch.Generator().manual_seed(0)
    true = torch.randint(0, 3, (10, 7), generator=gen)
    perfect = ground_truth_metrics((true + 1) % 3, true, 3, 3, random_trials=30)  # a renaming of the truth
    assert perfect["nmi"] == pytest.approx(1.0) and perfect["probe"]["accuracy"] == 1.0
    assert perfect["nmi_random"]["mean"] < 0.2 and perfect["nmi_random"]["p_value"] == pytest.approx(1 / 31)

    constant = ground_truth_metrics(torch.zeros_like(true), true, 3, 3)
    assert constant["nmi"] == 0.0
    assert constant["probe"]["accuracy"] == constant["probe"]["chance_accuracy"]

    partly = true.clone()
    partly[:, 0] = -1
    result = ground_truth_metrics(true, partly, 3, 3, action_names=["a", "b", "c"])
    assert result["num_labelled_transitions"] == 60 and sum(map(sum, result["contingency_table"])) == 60
    assert result["action_names"] == ["a", "b", "c"]

    nothing = ground_truth_metrics(true, torch.full_like(true, -1), 3)
    assert nothing["available"] is False and "no true actions" in nothing["reason"]
    with pytest.raises(ValueError, match="declares 2 actions"):
        ground_truth_metrics(true, true, 3, 2)


def test_data_without_true_actions_and_a_model_object(run_dir: Path) -> None:
    model = worldmodels.WorldModel.from_pretrained(run_dir / "dynamics" / "final")
    model.train()
    clips = moving_sprites(3, num_frames=4, image_size=16, seed=1).video
    items = [{"video": clip} for clip in clips]  # no "actions": like a directory of plain videos
    report = evaluate(model, items, horizon=2, figure_clips=1, latent_steps=1)
    assert model.training  # mode restored
    assert report.latent_actions["ground_truth"]["available"] is False
    assert "no ground truth" in report.summary() and report.settings["split"] is None
    assert report.figure_layouts["reconstruction.png"]["rows"] == 3 and not report.files
    assert "No contingency table" in report.to_markdown()


def test_fvd_is_computed_from_generations_when_weights_are_given(monkeypatch, run_dir: Path, sprite_data: Path,
                                                                 tmp_path: Path) -> None:
    import worldmodels.eval.evaluation as evaluation_module

    weights = tmp_path / "i3d.safetensors"
    weights.write_bytes(b"not read: compute_fvd is replaced below")
    seen = {}

    def fake_compute_fvd(real, fake, weights_path, *, size, device):  # noqa: ANN001
        seen.update(real=real, fake=fake, weights_path=weights_path, size=size)
        return FVDResult(value=12.5, skipped=False, weights_path=str(weights_path), num_real=len(real),
                         num_fake=len(fake), size=size)

    monkeypatch.setattr(evaluation_module, "compute_fvd", fake_compute_fvd)
    report = evaluate(run_dir, sprite_data, max_clips=4, horizon=2, fvd_weights=weights, fvd_size=32,
                      figure_clips=1, latent_steps=1)
    assert seen["real"].shape == seen["fake"].shape == (4, 3, 3, 16, 16)  # N, horizon + 1 frames, C H W
    assert torch.equal(seen["fake"][:, 0], seen["real"][:, 0])  # generated from the real first frame
    assert seen["size"] == 32 and Path(seen["weights_path"]) == weights
    assert report.headline()["fvd"] == 12.5 and "FVD 12.50" in report.summary()

    with pytest.raises(FileNotFoundError, match="I3D weights"):
        evaluate(run_dir, sprite_data, fvd_weights=tmp_path / "missing.pt")


def test_impossible_horizon_is_explained(run_dir: Path, sprite_data: Path) -> None:
    with pytest.raises(ValueError, match=r"1 <= horizon <= 3"):
        evaluate(run_dir, sprite_data, horizon=4)


def test_resolve_checkpoint_prefers_dynamics_then_the_latest_final(tmp_path: Path, run_dir: Path) -> None:
    assert resolve_checkpoint(run_dir) == run_dir / "dynamics" / "final"
    model = worldmodels.build("toy-world")
    run = tmp_path / "run"
    model.save_pretrained(run / "tokenizer" / "final")
    model.save_pretrained(run / "lam" / "final")
    os.utime(run / "tokenizer" / "final" / "config.json", (2_000_000_000, 2_000_000_000))  # written last
    assert resolve_checkpoint(run) == run / "tokenizer" / "final"
    unfinished = tmp_path / "unfinished"
    (unfinished / "dynamics" / "checkpoints" / "step-000010").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="holds no model") as error:
        resolve_checkpoint(unfinished)
    assert "step-000010" in str(error.value)  # points at what can be evaluated instead


def test_cli_writes_the_report_and_prints_the_summary(run_dir: Path, sprite_data: Path, tmp_path: Path,
                                                       capsys) -> None:
    out = tmp_path / "eval"
    code = main(["eval", str(run_dir), "--data", str(sprite_data), "--max-clips", "4", "--horizon", "2",
                 "--batch-size", "2", "--seed", "1", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Delta_t PSNR" in captured.out and str(out / "report.md") in captured.out
    assert "[eval] evaluating" in captured.err  # the run directory was resolved, and said so
    data = json.loads((out / "report.json").read_text())
    assert data["settings"]["num_clips"] == 4 and data["settings"]["seed"] == 1
    assert sorted(data["files"]) == sorted(["report.json", "report.md", *FIGURE_FILES])


def test_cli_reports_a_recorded_action_baseline_beside_the_model(run_dir: Path, sprite_data: Path, tmp_path: Path,
                                                                capsys) -> None:
    torch.manual_seed(1)
    baseline = worldmodels.build("toy-world", action_model={"name": "recorded", "num_actions": 5})
    baseline.save_pretrained(tmp_path / "baseline" / "dynamics" / "final")
    out = tmp_path / "eval"
    code = main(["eval", str(run_dir), "--data", str(sprite_data), "--max-clips", "4", "--horizon", "2",
                 "--batch-size", "2", "--out", str(out), "--baseline", str(tmp_path / "baseline"), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "baseline" in captured.out
    data = json.loads((out / "report.json").read_text())
    # the test episode with unknown actions cannot condition a recorded-action model: 3 of the 4 clips
    assert data["baseline"]["num_clips"] == 3 and len(data["baseline"]["controllability"]["delta_psnr_t"]) == 2
    assert "Recorded-action baseline" in (out / "report.md").read_text()


def test_a_baseline_with_no_fully_known_clip_is_left_out_with_a_note(run_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(1)
    baseline = worldmodels.build("toy-world", action_model={"name": "recorded", "num_actions": 5})
    baseline.save_pretrained(tmp_path / "baseline")
    clips = moving_sprites(3, num_frames=4, image_size=16, seed=7)
    items = []
    for i in range(3):
        actions = clips.actions[i].clone()
        actions[i] = -1  # as a frame_skip leaves it where the skipped steps' actions differ
        items.append({"video": clips.video[i], "actions": actions})
    report = evaluate(run_dir, items, horizon=HORIZON, batch_size=2, baseline=tmp_path / "baseline",
                      figure_clips=1, latent_steps=2)
    assert report.baseline is None and report.headline()["baseline_delta_psnr_t4"] is None
    assert any("baseline was not measured" in note and "frame_skip" in note for note in report.notes)
    unlabelled = [{"video": item["video"]} for item in items]  # no actions at all: asking for a baseline is an error
    with pytest.raises(ValueError, match="recorded actions"):
        evaluate(run_dir, unlabelled, horizon=HORIZON, batch_size=2, baseline=tmp_path / "baseline",
                 figure_clips=1, latent_steps=2)


def test_cli_bad_checkpoint_or_data_fails_with_a_clear_error(tmp_path: Path, sprite_data: Path, run_dir: Path,
                                                             capsys) -> None:
    assert main(["eval", str(tmp_path / "nowhere"), "--data", str(sprite_data)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "WorldModel checkpoint directory" in err and "Traceback" not in err

    (tmp_path / "empty_run" / "tokenizer").mkdir(parents=True)
    assert main(["eval", str(tmp_path / "empty_run"), "--data", str(sprite_data)]) == 2
    assert "holds no model" in capsys.readouterr().err

    assert main(["eval", str(run_dir), "--data", str(tmp_path / "no_data")]) == 2
    assert "--data" in capsys.readouterr().err

    assert main(["eval", str(run_dir), "--data", str(sprite_data), "--split", "validation"]) == 2
    assert "split 'validation'" in capsys.readouterr().err

    videos = tmp_path / "videos"
    videos.mkdir()
    assert main(["eval", str(run_dir), "--data", str(videos)]) == 2  # plain videos have no test split
    assert "--split all" in capsys.readouterr().err


@pytest.mark.slow
def test_fvd_with_a_local_i3d_file(run_dir: Path, sprite_data: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from worldmodels.eval import I3D

    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in I3D().state_dict().items()}, str(tmp_path / "i3d.safetensors"))
    report = evaluate(run_dir, sprite_data, max_clips=4, horizon=2, fvd_weights=tmp_path / "i3d.safetensors",
                      fvd_size=32, figure_clips=1, latent_steps=1)
    assert not report.fvd.skipped and report.fvd.value is not None and report.fvd.value >= 0
    assert report.fvd.num_real == report.fvd.num_fake == 4 and report.fvd.size == 32
    assert any("FVD from 4 clips" in note for note in report.notes)


@pytest.mark.slow
def test_genie_tiny_evaluates_end_to_end(tmp_path: Path) -> None:
    from worldmodels import registry

    if "genie-tiny" not in registry.list_components("model"):
        pytest.skip("the Genie plug-in (genie-tiny) is not installed")
    torch.manual_seed(0)
    model = worldmodels.build("genie-tiny")
    model.save_pretrained(tmp_path / "model")
    clips = moving_sprites(2, num_frames=model.num_frames, image_size=64, seed=0)
    items = [{"video": v, "actions": a} for v, a in zip(clips.video, clips.actions)]
    report = evaluate(tmp_path / "model", items, horizon=4, batch_size=2, out_dir=tmp_path / "out",
                      model_overrides={"sampler": {"steps": 2}}, figure_clips=1, latent_steps=2)
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["controllability"]["at_paper_t"]["t"] == 4 and data["headline"]["delta_psnr_t4"] is not None
    assert data["codebooks"]["tokenizer"]["num_codes"] == model.tokenizer.vocab_size
    assert data["latent_actions"]["num_actions"] == 8
    assert report.figure_layouts["latent_actions.png"]["rows"] == 8
