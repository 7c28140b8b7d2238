"""The trainer on the toy world: stages learn, chain, checkpoint, resume, fall back, and log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodels import WorldModel, build
from worldmodels.build_config import ConfigError
from worldmodels.checkpoint import load_tensors
from worldmodels.data.synthetic import SyntheticClipDataset
from worldmodels.training import CheckpointWarning, StageResult, TrainConfig, Trainer, list_checkpoints, train
from worldmodels.training.loggers import read_metrics


def _data(n: int = 16, seed: int = 0) -> SyntheticClipDataset:
    return SyntheticClipDataset(n, num_frames=4, image_size=16, seed=seed)


def _cfg(run_dir: Path, **overrides) -> TrainConfig:
    values = dict(stage="tokenizer", steps=12, batch_size=4, lr=3e-3, warmup=2, min_lr_ratio=0.1,
                  checkpoint_every=4, keep_last=0, log_every=1, image_every=0, run_dir=str(run_dir),
                  progress=False, tensorboard=False, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def _fit(run_dir: Path, data=None, val=None, **overrides) -> StageResult:
    return Trainer("toy-world", _cfg(run_dir, **overrides), data or _data(), val).fit()


def _losses(result: StageResult) -> list[float]:
    return [r["loss"] for r in result.history if "loss" in r]


def _learned(losses: list[float], factor: float) -> bool:
    head, tail = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    return tail < factor * head


def _weights(directory: Path, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_tensors(directory / "model.safetensors").items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def tokenizer_run(tmp_path_factory) -> tuple[Path, StageResult]:
    run = tmp_path_factory.mktemp("run")
    return run, _fit(run, steps=20)


# ---------------------------------------------------------------------------------------- stages learn


def test_tokenizer_stage_lowers_its_loss(tokenizer_run) -> None:
    run, result = tokenizer_run
    assert result.step == 20 and _learned(_losses(result), 0.7), _losses(result)
    model = WorldModel.from_pretrained(result.final_dir)
    assert model.name == "toy-world"


def test_lam_stage_lowers_its_loss_and_keeps_the_trained_tokenizer(tokenizer_run) -> None:
    run, tok = tokenizer_run
    result = _fit(run, stage="lam", steps=20)
    assert _learned(_losses(result), 0.8), _losses(result)
    for k, v in _weights(tok.final_dir, "tokenizer.").items():
        assert torch.equal(v, _weights(result.final_dir, "tokenizer.")[k])


def test_dynamics_stage_lowers_its_loss_and_leaves_the_tokenizer_untouched(tokenizer_run, tmp_path: Path) -> None:
    run, tok = tokenizer_run
    dyn_run = tmp_path / "run"
    shutil.copytree(run / "tokenizer", dyn_run / "tokenizer")
    result = _fit(dyn_run, stage="dynamics", steps=20, lr=1e-2)
    assert _learned(_losses(result), 0.8), _losses(result)
    before, after = _weights(tok.final_dir, "tokenizer."), _weights(result.final_dir, "tokenizer.")
    assert before and all(torch.equal(before[k], after[k]) for k in before)
    run_file = json.loads((dyn_run / "dynamics" / "run.json").read_text())
    assert run_file["init_sources"]["tokenizer"].endswith("tokenizer/final")
    assert any(k.startswith("lam/") for k in result.history[-1])  # the LAM was co-trained


def test_frozen_action_model_stays_frozen_and_needs_a_trained_one(tokenizer_run, tmp_path: Path) -> None:
    run, _ = tokenizer_run
    lam_run = tmp_path / "run"
    shutil.copytree(run / "tokenizer", lam_run / "tokenizer")
    with pytest.raises(ConfigError, match="needs a trained action_model from the lam stage"):
        _fit(lam_run, stage="dynamics", steps=2, freeze_action_model=True)
    lam = _fit(lam_run, stage="lam", steps=3)
    dyn = _fit(lam_run, stage="dynamics", steps=3, freeze_action_model=True)
    before, after = _weights(lam.final_dir, "action_model."), _weights(dyn.final_dir, "action_model.")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(k.startswith("lam/") for k in dyn.history[-1])


def test_dynamics_without_a_tokenizer_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a trained tokenizer from the tokenizer stage"):
        _fit(tmp_path, stage="dynamics", steps=2)


def test_stage_all_runs_tokenizer_then_dynamics_with_per_stage_settings(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, stage="all", steps=4, per_stage={"dynamics": {"steps": 2, "lr": 1e-3}})
    result = train(cfg, model="toy-world", train_data=_data())
    assert list(result.stages) == ["tokenizer", "dynamics"]
    assert result.stages["tokenizer"].step == 4 and result.stages["dynamics"].step == 2
    assert result.final_dir == tmp_path / "dynamics" / "final"
    assert json.loads((tmp_path / "dynamics" / "run.json").read_text())["train"]["lr"] == 1e-3


def test_all_stages_lists_what_stage_all_runs_and_each_stage_starts_from_the_last(tmp_path: Path) -> None:
    per_stage = {"lam": {"steps": 3}, "dynamics": {"steps": 2, "freeze_action_model": True}}
    cfg = _cfg(tmp_path, stage="all", steps=2, all_stages=["tokenizer", "lam", "dynamics"], per_stage=per_stage)
    assert cfg.stages == ("tokenizer", "lam", "dynamics")
    result = train(cfg, model="toy-world", train_data=_data())
    assert list(result.stages) == ["tokenizer", "lam", "dynamics"]
    assert [r.step for r in result.stages.values()] == [2, 3, 2]
    lam, dyn = _weights(tmp_path / "lam" / "final", "action_model."), _weights(result.final_dir, "action_model.")
    assert lam and all(torch.equal(lam[k], dyn[k]) for k in lam)  # the dynamics ran on the lam stage's action model
    tok, tok_lam = _weights(tmp_path / "tokenizer" / "final", "tokenizer."), _weights(tmp_path / "lam" / "final", "tokenizer.")
    assert all(torch.equal(tok[k], tok_lam[k]) for k in tok)


@pytest.mark.parametrize("stages", [["tokenizer", "tokenizer"], ["tokenizer", "decoder"], []])
def test_all_stages_refuses_an_unknown_repeated_or_empty_list(stages: list[str]) -> None:
    with pytest.raises(ConfigError, match="all_stages"):
        TrainConfig(stage="all", all_stages=stages)


def test_all_stages_refuses_a_stage_before_one_it_loads_from(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, stage="all", steps=2, all_stages=["tokenizer", "dynamics", "lam"])
    with pytest.raises(ConfigError, match="runs dynamics before lam"):
        train(cfg, model="toy-world", train_data=_data())
    assert not (tmp_path / "tokenizer").exists()  # refused before anything trained
    recorded = build("toy-world", action_model={"name": "recorded", "num_actions": 4})
    with pytest.raises(ConfigError, match="has no 'lam' stage"):
        train(_cfg(tmp_path, stage="all", all_stages=["tokenizer", "lam", "dynamics"]), model=recorded,
              train_data=_data())


def test_a_model_trained_on_every_second_frame_records_it_and_is_evaluated_on_it(tmp_path: Path) -> None:
    from worldmodels.data.clips import ClipDataset
    from worldmodels.data.shards import Episode, ShardWriter
    from worldmodels.data.synthetic import moving_sprites
    from worldmodels.eval.held_out import load_held_out_clips

    root = tmp_path / "data"
    clips = moving_sprites(4, num_frames=12, image_size=16, seed=5)
    with ShardWriter(root, {"env": {"name": "sprites", "num_actions": 5}}) as writer:
        for i, frames in enumerate(clips.frames_uint8()):
            actions = np.concatenate([clips.actions[i].numpy(), [-1]])
            writer.add("train" if i < 2 else "test", Episode(frames, actions, level_seed=i))
    result = _fit(tmp_path / "run", data=ClipDataset(root, 4, image_size=16, split="train", frame_skip=2), steps=2)
    model = WorldModel.from_pretrained(result.final_dir)
    assert model.frame_skip == 2 and model.config["frame_skip"] == 2
    held_out = load_held_out_clips(root, model, "test", None)  # a directory is cut as the model was trained
    want = ClipDataset(root, 4, image_size=16, split="test", frame_skip=2)
    assert held_out.video.shape[0] == len(want) > 0
    assert torch.equal(held_out.video, torch.stack([want[i]["video"] for i in range(len(want))]))
    assert not torch.equal(held_out.video, load_held_out_clips(root, _toy_world(), "test", None).video)
    older = {k: v for k, v in model.config.items() if k != "frame_skip"}  # configs saved before the key
    assert WorldModel.from_config(older).frame_skip == 1
    with pytest.raises(ValueError, match="frame_skip"):
        WorldModel.from_config(model.config, frame_skip=0)


def _toy_world() -> WorldModel:
    return WorldModel.from_config("toy-world")


def test_bf16_autocast_on_cpu_trains(tmp_path: Path) -> None:
    result = _fit(tmp_path, steps=20, precision="bf16")
    losses = _losses(result)
    assert all(torch.isfinite(torch.tensor(losses))) and _learned(losses, 0.7), losses


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_trains_in_bf16_only_where_the_hardware_has_it(tmp_path: Path, monkeypatch, native) -> None:
    """``precision=auto`` gives exactly the losses of an explicit ``bf16`` run on hardware with
    native bf16 and of an ``fp32`` run without it, and the run file records which it was."""
    import worldmodels.training.precision as precision

    monkeypatch.setattr(precision, "has_native_bf16", lambda device: native)
    expected = "bf16" if native else "fp32"
    auto = _fit(tmp_path / "auto", steps=3, precision="auto")
    explicit = _fit(tmp_path / "explicit", steps=3, precision=expected)
    other = _fit(tmp_path / "other", steps=3, precision="fp32" if native else "bf16")
    assert _losses(auto) == _losses(explicit) != _losses(other)
    assert json.loads((tmp_path / "auto" / "tokenizer" / "run.json").read_text())["precision"] == expected


def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch) -> None:
    from worldmodels.training.precision import has_native_bf16, resolve_precision

    cpu = torch.device("cpu")
    for amx, avx512_bf16, native in [(True, False, True), (False, True, True), (False, False, False)]:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        assert has_native_bf16(cpu) is native
        assert resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
        assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    assert has_native_bf16(torch.device("meta")) is False
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        resolve_precision("fp16", cpu)


def test_gradient_accumulation_matches_one_large_batch(tmp_path: Path) -> None:
    one = _losses(_fit(tmp_path / "a", steps=6))
    accumulated = _losses(_fit(tmp_path / "b", steps=6, grad_accum=2))
    assert accumulated == pytest.approx(one, abs=1e-5)


def test_same_seed_same_losses_other_seed_other_losses(tmp_path: Path) -> None:
    a = _losses(_fit(tmp_path / "a", stage="lam", steps=4))
    b = _losses(_fit(tmp_path / "b", stage="lam", steps=4))
    c = _losses(_fit(tmp_path / "c", stage="lam", steps=4, seed=1))
    assert a == b and a != c


# ---------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_holds_model_optimizer_schedule_rng_and_position(tmp_path: Path) -> None:
    _fit(tmp_path, steps=8, keep_last=2)
    checkpoints = list_checkpoints(tmp_path / "tokenizer" / "checkpoints")
    assert [s for s, _ in checkpoints] == [4, 8]
    path = checkpoints[-1][1]
    state = json.loads((path / "state.json").read_text())
    assert state["step"] == 8 and state["position"] == 8 * 4 and state["scheduler"]["last_epoch"] == 8
    tensors = load_tensors(path / "state.safetensors")
    assert any(k.startswith("optim.state.") and k.endswith("exp_avg") for k in tensors)
    assert {"rng.rank0.torch", "rng.rank0.numpy", "rng.rank0.python"} <= set(tensors)
    WorldModel.from_pretrained(path)  # the checkpoint is a model directory too
    assert not any(p.name.endswith((".pkl", ".pt", ".bin")) for p in path.rglob("*"))


def test_keep_last_retains_only_the_newest_checkpoints(tmp_path: Path) -> None:
    _fit(tmp_path, steps=10, checkpoint_every=2, keep_last=3)
    assert [s for s, _ in list_checkpoints(tmp_path / "tokenizer" / "checkpoints")] == [6, 8, 10]


def test_resume_continues_exactly(tmp_path: Path) -> None:
    reference = _fit(tmp_path / "ref", stage="lam", steps=8)
    partial_dir = tmp_path / "partial"
    shutil.copytree(tmp_path / "ref", partial_dir)
    shutil.rmtree(partial_dir / "lam" / "checkpoints" / "step-000008")
    shutil.rmtree(partial_dir / "lam" / "final")
    resumed = _fit(partial_dir, stage="lam", steps=8, resume=True)
    assert resumed.resumed_from == 4 and resumed.step == 8
    assert _losses(resumed) == _losses(reference)[4:]
    assert _same_losses(tmp_path / "ref", partial_dir)


def _same_losses(a: Path, b: Path, stage: str = "lam") -> bool:
    strip = lambda rs: [{k: v for k, v in r.items() if "per_s" not in k} for r in rs]  # noqa: E731
    return strip(read_metrics(a / stage / "metrics.jsonl")) == strip(read_metrics(b / stage / "metrics.jsonl"))


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    _fit(tmp_path, steps=8)
    ckpts = tmp_path / "tokenizer" / "checkpoints"
    weights = ckpts / "step-000008" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    shutil.rmtree(tmp_path / "tokenizer" / "final")
    with pytest.warns(CheckpointWarning, match=r"step-000008.*Falling back"):
        resumed = _fit(tmp_path, steps=8, resume=True)
    assert resumed.resumed_from == 4 and resumed.step == 8
    assert (ckpts / "step-000008.corrupt").is_dir()
    WorldModel.from_pretrained(ckpts / "step-000008")  # re-written, readable


def test_a_run_directory_is_never_overwritten_without_resume(tmp_path: Path) -> None:
    _fit(tmp_path, steps=2)
    with pytest.raises(ConfigError, match="train.resume=true"):
        _fit(tmp_path, steps=2)
    done = _fit(tmp_path, steps=2, resume=True)
    assert done.already_done and done.step == 2


def test_non_finite_losses_are_skipped_and_never_checkpointed(tmp_path: Path) -> None:
    _fit(tmp_path, steps=4)
    good = (tmp_path / "tokenizer" / "checkpoints" / "step-000004" / "model.safetensors").read_bytes()
    model = WorldModel.from_config("toy-world")
    clean_loss = model.tokenizer_loss

    def poisoned(video: torch.Tensor):
        loss, metrics = clean_loss(video)
        return loss * float("nan"), metrics

    model.tokenizer_loss = poisoned  # type: ignore[method-assign]
    trainer = Trainer(model, _cfg(tmp_path, steps=8, resume=True, max_bad_steps=2, progress=True), _data())
    with pytest.raises(FloatingPointError, match="non-finite"):
        trainer.fit()
    assert [s for s, _ in list_checkpoints(tmp_path / "tokenizer" / "checkpoints")] == [4]
    assert (tmp_path / "tokenizer" / "checkpoints" / "step-000004" / "model.safetensors").read_bytes() == good


# ---------------------------------------------------------------------------------------- logging


def test_metrics_validation_and_tensorboard_images(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = _fit(tmp_path, steps=4, log_every=2, val_every=2, image_every=4, tensorboard=True,
                  val=_data(4, seed=5))
    records = read_metrics(tmp_path / "tokenizer" / "metrics.jsonl")
    train_steps = [r["step"] for r in records if "loss" in r]
    assert train_steps == [2, 4]
    assert all(r["frames_per_s"] > 0 and r["tokens_per_s"] == pytest.approx(r["frames_per_s"] * 16)
               for r in records if "loss" in r)
    assert [r["step"] for r in records if "val/loss" in r] == [2, 4]
    assert result.history[-1]["step"] == 4
    events = EventAccumulator(str(tmp_path / "tokenizer" / "tensorboard"))
    events.Reload()
    assert "train/loss" in events.Tags()["scalars"] and "val/loss" in events.Tags()["scalars"]
    assert "images/reconstruction" in events.Tags()["images"]


def test_cli_trains_and_says_where_the_checkpoints_went(tmp_path: Path, capsys) -> None:
    from worldmodels.cli import main

    code = main(["train", "model=toy-world", "stage=tokenizer", "train.steps=3", "data.synthetic=true",
                 "data.synthetic_clips=8", f"train.run_dir={tmp_path}", "train.progress=false",
                 "train.tensorboard=false", "train.warmup=1"])
    out = capsys.readouterr().out
    assert code == 0
    assert str(tmp_path / "tokenizer" / "checkpoints") in out and str(tmp_path / "tokenizer" / "final") in out
    assert (tmp_path / "tokenizer" / "final" / "config.json").is_file()


def test_cli_without_a_model_or_data_fails_cleanly(tmp_path: Path, capsys) -> None:
    from worldmodels.cli import main

    assert main(["train", f"train.run_dir={tmp_path}", "data.synthetic=true"]) == 2
    assert "model=NAME" in capsys.readouterr().err
    assert main(["train", "model=toy-world", f"train.run_dir={tmp_path}"]) == 2
    assert "data.path=DIR" in capsys.readouterr().err


def test_recipes_from_a_plugin_search_path_set_the_training(tmp_path: Path, monkeypatch, capsys) -> None:
    import worldmodels.config as config
    from worldmodels.cli import main

    recipes = tmp_path / "configs" / "recipe"
    recipes.mkdir(parents=True)
    (recipes / "toy-quick.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /model: toy-world\n\n"
        "train:\n  stage: lam\n  steps: 2\n  warmup: 1\n  progress: false\n  tensorboard: false\n"
        "data:\n  synthetic: true\n  synthetic_clips: 8\n"
    )
    monkeypatch.setattr(config, "_search_paths", [*config._search_paths, f"file://{tmp_path / 'configs'}"])
    assert main(["train", "recipe=toy-quick", f"train.run_dir={tmp_path / 'run'}"]) == 0
    assert "lam: 2 steps" in capsys.readouterr().out


def test_resume_without_naming_the_model_uses_the_saved_one(tmp_path: Path, capsys) -> None:
    from worldmodels.cli import main

    common = ["data.synthetic=true", "data.synthetic_clips=8", f"train.run_dir={tmp_path}", "train.progress=false",
              "train.tensorboard=false", "train.warmup=1", "train.checkpoint_every=2"]
    assert main(["train", "model=toy-world", "train.steps=2", *common]) == 0
    assert main(["train", "resume=true", "train.steps=4", *common]) == 0
    assert "tokenizer: 4 steps" in capsys.readouterr().out
    state = json.loads((tmp_path / "tokenizer" / "checkpoints" / "step-000004" / "state.json").read_text())
    assert state["step"] == 4 and state["position"] == 4 * 8


def test_dataloader_workers_give_the_same_losses(tmp_path: Path) -> None:
    inline = _losses(_fit(tmp_path / "a", steps=3))
    workers = _losses(_fit(tmp_path / "b", steps=3, num_workers=2))
    assert workers == inline


@pytest.mark.slow
def test_torch_compile_matches_eager(tmp_path: Path) -> None:
    eager = _losses(_fit(tmp_path / "eager", stage="lam", steps=3))
    compiled = _losses(_fit(tmp_path / "compiled", stage="lam", steps=3, compile=True))
    assert compiled == pytest.approx(eager, rel=1e-4, abs=1e-5)
