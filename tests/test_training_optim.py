"""The optimizer's parameter groups and the trainer's handling of stateful modules (VQ codebooks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import worldmodels
from worldmodels.training.optim import clear_moments, parameter_groups


def _names(model: nn.Module, group: dict) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def test_weight_decay_reaches_only_linear_and_conv_weights() -> None:
    model = worldmodels.build("genie-tiny")
    decay, no_decay = parameter_groups(model, 0.1)
    decayed, kept = _names(model, decay), _names(model, no_decay)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    for name in ("quantizer.codebook", "token_embed.weight", "pos.time", "pos.row", "norm.weight", ".bias"):
        assert not any(name in n for n in decayed), f"{name} must not be decayed"
        if name != "quantizer.codebook" or any(name in n for n in kept):
            assert any(name in n for n in kept), f"{name} missing from the no-decay group"
    assert any(n.endswith("qkv.weight") for n in decayed) and any(n.endswith("fc1.weight") for n in decayed)
    assert decayed | kept == {n for n, p in model.named_parameters() if p.requires_grad}


def test_clear_moments_zeroes_only_the_given_rows() -> None:
    codebook = nn.Parameter(torch.randn(4, 3))
    opt = torch.optim.AdamW([codebook], lr=0.1)
    codebook.sum().backward()
    opt.step()
    rows = torch.tensor([False, True, False, True])
    clear_moments(opt, codebook, rows)
    state = opt.state[codebook]
    assert state["exp_avg"][rows].abs().sum() == 0 and state["exp_avg_sq"][rows].abs().sum() == 0
    assert state["exp_avg"][~rows].abs().sum() > 0


# ---------------------------------------------------------------------------------------- stateful modules
from pathlib import Path  # noqa: E402

from worldmodels import WorldModel  # noqa: E402
from worldmodels.data.synthetic import SyntheticClipDataset  # noqa: E402
from worldmodels.training import TrainConfig, Trainer  # noqa: E402

_FRAME_VQ = {"name": "frame-vq", "vocab_size": 16, "code_dim": 4, "channels": 8, "downsample": 4,
             "dead_code_threshold": 0.5}


def _vq_trainer(tmp_path: Path, **overrides) -> Trainer:
    model = WorldModel.from_config("toy-world", tokenizer=_FRAME_VQ)
    values = dict(stage="tokenizer", steps=4, batch_size=4, lr=1e-3, warmup=0, log_every=1, image_every=0,
                  checkpoint_every=0, run_dir=str(tmp_path), progress=False, tensorboard=False)
    values.update(overrides)
    trainer = Trainer(model, TrainConfig(**values), SyntheticClipDataset(8, num_frames=4, image_size=16, seed=0))
    trainer.setup()
    return trainer


def _batches(trainer: Trainer, count: int) -> list[dict]:
    from worldmodels.training.data import collate_clips

    data = trainer.train_data
    return [collate_clips([data[i], data[i + 1]]) for i in range(0, 2 * count, 2)]


def test_a_skipped_step_leaves_the_codebook_and_its_statistics_untouched(tmp_path: Path) -> None:
    trainer = _vq_trainer(tmp_path)
    vq = trainer.model.tokenizer.quantizer
    assert vq.defer_state_updates
    trainer.train_step(_batches(trainer, 1))  # initialises the codebook, one real step
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    original = trainer.model.tokenizer_loss
    trainer.model.tokenizer_loss = lambda video: (lambda out: (out[0] * float("nan"), out[1]))(original(video))
    out = trainer.train_step(_batches(trainer, 1))
    assert out["skipped"] == 1.0
    for key, value in vq.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed in a skipped step"


def test_accumulated_micro_batches_update_the_statistics_once(tmp_path: Path) -> None:
    trainer = _vq_trainer(tmp_path, grad_accum=2)
    vq = trainer.model.tokenizer.quantizer
    trainer.train_step(_batches(trainer, 2))
    usage = vq.usage.clone()
    micro = _batches(trainer, 2)
    with torch.no_grad():
        hist = sum(torch.bincount(trainer.model.tokenizer.encode(b["video"]).flatten(), minlength=16).float()
                   for b in micro)
    trainer.train_step(micro)
    expected = usage * vq.usage_decay + (1 - vq.usage_decay) * hist / hist.sum()
    dead = (expected < vq.dead_code_threshold / vq.num_codes) & (hist == 0)
    expected[dead] = 1.0 / vq.num_codes
    torch.testing.assert_close(vq.usage, expected, atol=1e-5, rtol=0)  # one decay for the two micro-batches


def test_fit_leaves_quantizers_in_immediate_mode(tmp_path: Path) -> None:
    trainer = _vq_trainer(tmp_path)
    trainer.fit()
    assert not trainer.model.tokenizer.quantizer.defer_state_updates


def test_recorded_actions_reach_the_dynamics_loss() -> None:
    torch.manual_seed(0)
    model = WorldModel.from_config("toy-world", action_model={"name": "recorded", "num_actions": 5}).train()
    video = torch.rand(2, 4, 3, 16, 16)
    actions = torch.randint(0, 5, (2, 3))
    torch.manual_seed(1)
    a, _ = model.dynamics_loss(video, actions=actions)
    torch.manual_seed(1)
    b, _ = model.dynamics_loss(video, actions=(actions + 1) % 5)
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="reads the actions from the data set"):
        model.dynamics_loss(video)
    assert torch.equal(model.infer_actions(video, actions), actions)
    onehot = model.action_model.embed(torch.tensor([[-1, 2]]))
    assert onehot[0, 0].abs().sum() == 0 and onehot[0, 1].argmax() == 2


def test_recorded_action_dynamics_trains_and_draws_images(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    data = SyntheticClipDataset(8, num_frames=4, image_size=16, seed=0)  # the sprite world's 5 true actions
    tok = Trainer("toy-world", TrainConfig(stage="tokenizer", steps=2, batch_size=4, run_dir=str(tmp_path),
                                           progress=False, image_every=0, checkpoint_every=0), data).fit()
    model = WorldModel.from_config("toy-world", action_model={"name": "recorded", "num_actions": 5})
    cfg = TrainConfig(stage="dynamics", steps=4, batch_size=4, lr=1e-2, warmup=0, log_every=1, image_every=2,
                      checkpoint_every=0, run_dir=str(tmp_path / "base"), init_from=str(tok.final_dir),
                      init_components=["tokenizer"], progress=False)
    result = Trainer(model, cfg, data).fit()
    assert result.step == 4 and any((tmp_path / "base" / "dynamics" / "tensorboard").iterdir())
