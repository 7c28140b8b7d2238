"""Genie presets (parameter counts on the meta device) and the compatibility names."""

from __future__ import annotations

import pytest
import torch

import worldmodels
from worldmodels import count_parameters

pytest.importorskip("worldmodels_genie")

from worldmodels_genie import GenieConfig, create_genie_large, create_genie_small  # noqa: E402
from worldmodels_genie.presets import genie_tiny  # noqa: E402


def _counts(model: worldmodels.WorldModel) -> dict[str, int]:
    parts = {k: count_parameters(getattr(model, k)) for k in ("tokenizer", "action_model", "dynamics")}
    return {**parts, "total": count_parameters(model)}


def test_presets_are_registered_by_the_plugin() -> None:
    assert {"genie-tiny", "genie-small", "genie-large"} <= set(worldmodels.list_components("model", "genie-*"))
    entry = worldmodels.registry.get_entry("model", "genie-large")
    assert "genie" in entry.distribution


def test_genie_large_reproduces_the_paper_counts_without_memory() -> None:
    model = worldmodels.build("genie-large", device="meta")
    assert all(p.is_meta for p in model.parameters())
    counts = _counts(model)
    assert 180e6 < counts["tokenizer"] < 210e6  # paper: ~200M
    assert 300e6 < counts["action_model"] < 350e6  # paper: ~300M
    assert 10.0e9 < counts["dynamics"] < 10.2e9  # paper: 10.1B
    assert 10.6e9 < counts["total"] < 10.8e9  # paper: 10.7B
    assert model.token_grid == (23, 40) and model.image_size == (90, 160) and model.num_actions == 8
    assert model.sampler.steps == 25 and model.sampler.temperature == 2.0 and model.sampler.order == "random"


def test_genie_small_fits_one_gpu() -> None:
    counts = _counts(worldmodels.build("genie-small", device="meta"))
    assert 100e6 < counts["total"] < 200e6


def test_genie_tiny_is_cpu_sized() -> None:
    model = worldmodels.build("genie-tiny", device="meta")
    counts = _counts(model)
    for part in ("tokenizer", "dynamics"):
        assert 1e6 < counts[part] < 4e6, f"{part} has {counts[part]} parameters"
    assert 2e5 < counts["action_model"] < 4e6, f"action_model has {counts['action_model']} parameters"
    assert model.token_grid == (16, 16) and model.image_size == (64, 64) and model.num_actions == 8
    assert model.dynamics.position_grid == (8, 8)  # 2x2 tokens per transformer position
    assert model.tokenizer.get_config()["name"] == "frame-vq" and model.tokenizer.vocab_size == 125


def test_preset_keyword_arguments_win() -> None:
    cfg = genie_tiny(num_frames=4, sampler={"steps": 3}, dynamics={"depth": 2})
    assert cfg["num_frames"] == 4 and cfg["sampler"]["steps"] == 3 and cfg["sampler"]["temperature"] == 0.5
    assert cfg["dynamics"] == {"name": "maskgit", "dim": 160, "depth": 2, "num_heads": 5, "token_patch": 2,
                               "copy_prior": True, "mask_mode": "frame", "mask_rate_min": 0.0, "temporal_pos": "rope"}


def test_show_command_reports_the_large_count(capsys) -> None:
    from worldmodels.cli import main

    assert main(["show", "genie-large"]) == 0
    out = capsys.readouterr().out
    assert "10.67B" in out and "maskgit" in out


def test_genie_config_maps_onto_presets() -> None:
    assert GenieConfig() == GenieConfig.from_preset("genie-small")
    large = GenieConfig.from_preset("genie-large")
    assert (large.dynamics_dim, large.dynamics_depth, large.dynamics_num_heads) == (5120, 24, 36)
    cfg = GenieConfig(num_frames=8, image_size=32, action_vocab_size=6, maskgit_steps=10).to_model_config()
    assert cfg["num_frames"] == 8 and cfg["image_size"] == 32
    assert cfg["action_model"]["num_actions"] == 6 and cfg["sampler"]["steps"] == 10
    assert cfg["dynamics"]["dim"] == 768 and cfg["tokenizer"]["name"] == "st-vivit"
    assert GenieConfig().training_settings()["learning_rate"] == 3e-5


def test_create_functions_return_world_models() -> None:
    small = create_genie_small(num_frames=8, image_size=32, device="meta", dynamics_depth=2)
    assert isinstance(small, worldmodels.WorldModel)
    assert small.num_frames == 8 and small.image_size == (32, 32) and len(small.dynamics.transformer.blocks) == 2
    large = create_genie_large(device="meta")
    assert 10.6e9 < count_parameters(large) < 10.8e9
    with pytest.raises(TypeError, match="GenieConfig fields"):
        create_genie_small(device="meta", dynamics_width=3)


def test_tiny_world_model_end_to_end_api() -> None:
    """The names users know: infer_actions, play (action as a LongTensor), generate from a prompt frame."""
    model = worldmodels.build("genie-tiny", num_frames=4, sampler={"steps": 4}).eval()
    frames = torch.rand(1, 3, 3, 64, 64)
    actions = model.infer_actions(frames)
    assert actions.shape == (1, 2) and actions.dtype == torch.int64
    step = model.play(frames[:, -1], torch.tensor([3]))
    assert step.frame.shape == (1, 3, 64, 64) and step.tokens.shape == (1, 16, 16)
    video = model.generate(frames[:, 0], torch.tensor([[1, 2, 3, 4, 5]]), generator=torch.Generator().manual_seed(0))
    assert video.shape == (1, 6, 3, 64, 64) and 0.0 <= float(video.min()) and float(video.max()) <= 1.0
    video = model.generate(frames[:, 0], num_frames=5, generator=torch.Generator().manual_seed(0))  # random actions
    assert video.shape == (1, 5, 3, 64, 64)
    with pytest.raises(ValueError, match="num_frames"):
        model.generate(frames[:, 0])


def test_misspelt_preset_suggests_the_right_name_and_names_the_plugin() -> None:
    with pytest.raises(worldmodels.UnknownComponentError) as info:
        worldmodels.build("genie-smal")
    message = str(info.value)
    assert "Did you mean 'genie-small'" in message
    assert "genie (worldmodels-genie" in message  # the loaded plug-in and its distribution
