"""Checkpoint directories: bit-exact round trips, atomic writes, clear errors, no pickle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import worldmodels
from worldmodels import CheckpointError, WorldModel
from worldmodels import checkpoint as ckpt


def _outputs(model: WorldModel, video: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        tokens = model.encode(video)
        return {"tokens": tokens, "decoded": model.decode(tokens), "actions": model.infer_actions(video),
                "next": model.predict_next_tokens(tokens[:, :-1], model.infer_actions(video))}


def test_roundtrip_reproduces_outputs_bit_for_bit(tmp_path: Path) -> None:
    model = worldmodels.build("toy-world").eval()
    video = torch.rand(2, 4, 3, 16, 16)
    model.save_pretrained(tmp_path / "ck")
    loaded = WorldModel.from_pretrained(tmp_path / "ck").eval()
    for key, value in _outputs(model, video).items():
        assert torch.equal(value, _outputs(loaded, video)[key]), key
    assert loaded.config == model.config


def test_checkpoint_is_json_and_safetensors_only(tmp_path: Path) -> None:
    worldmodels.build("toy-world").save_pretrained(tmp_path / "ck")
    files = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert files == ["config.json", "model.safetensors"]
    saved = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert saved["model"]["library_version"] == worldmodels.__version__
    assert saved["meta"]["components"]["tokenizer"] == "toy-tokenizer"


def test_truncated_weights_give_a_clear_error(tmp_path: Path) -> None:
    worldmodels.build("toy-world").save_pretrained(tmp_path / "ck")
    weights = tmp_path / "ck" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or was altered"):
        WorldModel.from_pretrained(tmp_path / "ck")


def test_corrupt_weights_without_checksum_give_a_clear_error(tmp_path: Path) -> None:
    worldmodels.build("toy-world").save_pretrained(tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    del cfg["meta"]["weights_sha256"]
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        WorldModel.from_pretrained(tmp_path / "ck")


def test_a_crash_mid_save_leaves_the_previous_checkpoint_intact(tmp_path: Path, monkeypatch) -> None:
    model = worldmodels.build("toy-world").eval()
    video = torch.rand(1, 4, 3, 16, 16)
    model.save_pretrained(tmp_path / "ck")
    expected = _outputs(model, video)

    other = worldmodels.build("toy-world")
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("worldmodels.world_model.write_json", crash)
    with pytest.raises(OSError, match="disk full"):
        other.save_pretrained(tmp_path / "ck")
    monkeypatch.undo()
    loaded = WorldModel.from_pretrained(tmp_path / "ck").eval()
    for key, value in expected.items():
        assert torch.equal(value, _outputs(loaded, video)[key]), key
    assert [p.name for p in tmp_path.iterdir()] == ["ck"], "temporary directories were left behind"


def test_interrupted_swap_is_recovered(tmp_path: Path) -> None:
    """If a crash struck between moving the old directory aside and moving the new one in."""
    worldmodels.build("toy-world").save_pretrained(tmp_path / "ck")
    (tmp_path / "ck").rename(tmp_path / "ck.old-1234")
    loaded = WorldModel.from_pretrained(tmp_path / "ck")
    assert isinstance(loaded, WorldModel) and (tmp_path / "ck").is_dir()


def test_loading_into_a_different_architecture_names_the_mismatch(tmp_path: Path) -> None:
    worldmodels.build("toy-world").save_pretrained(tmp_path / "ck")
    with pytest.raises(CheckpointError, match=r"dynamics\.(tok|act|head)\.weight: checkpoint"):
        WorldModel.from_pretrained(tmp_path / "ck", dynamics={"dim": 32})


def test_missing_directory_and_foreign_config_are_explained(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        WorldModel.from_pretrained(tmp_path / "nope")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="not a worldmodels model config"):
        WorldModel.from_pretrained(tmp_path / "other")


def test_nested_state_flattens_without_pickle() -> None:
    state = {"step": 3, "opt": {"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 0.1}]},
             "rng": (torch.arange(3), None)}
    tensors, skeleton = ckpt.flatten_state(state)
    json.dumps(skeleton)  # the skeleton is plain JSON
    back = ckpt.unflatten_state(tensors, json.loads(json.dumps(skeleton)))
    assert back["step"] == 3 and back["opt"]["param_groups"] == [{"lr": 0.1}]
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], torch.ones(2))
    assert isinstance(back["rng"], tuple) and torch.equal(back["rng"][0], torch.arange(3))
    with pytest.raises(TypeError, match="without pickle"):
        ckpt.flatten_state({"x": object()})
