"""Delta_t PSNR: zero for a model that ignores its actions, clearly positive for one that follows them."""

from __future__ import annotations

import json

import pytest
import torch
import toy_components  # noqa: F401  (registers the toy-world preset)
from torch import Tensor, nn

import worldmodels
from worldmodels.eval import ControllabilityResult, ControllableModel, delta_psnr


def _toy_world_ignoring_actions() -> worldmodels.WorldModel:
    torch.manual_seed(0)
    model = worldmodels.build("toy-world")
    with torch.no_grad():  # the toy dynamics sees actions only through this projection
        model.dynamics.act.weight.zero_()
        model.dynamics.act.bias.zero_()
    return model


def test_model_that_ignores_actions_scores_zero() -> None:
    model = _toy_world_ignoring_actions()
    clips = torch.rand(5, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1))  # B T C H W
    model.train()
    result = delta_psnr(model, clips, seed=3)
    assert model.training  # mode restored
    assert result.num_clips == 5 and result.horizon == 3
    assert result.delta_psnr_t.shape == (3,) and result.delta_psnr_per_clip.shape == (5, 3)
    assert torch.equal(result.psnr_inferred_t, result.psnr_random_t)
    assert torch.all(result.delta_psnr_t == 0)
    assert torch.all(torch.isfinite(result.psnr_inferred_t)) and result.psnr_inferred_t.min() > 0


def test_toy_world_that_uses_actions_runs_and_is_reproducible() -> None:
    torch.manual_seed(0)
    model = worldmodels.build("toy-world")
    with torch.no_grad():
        model.dynamics.act.weight.mul_(50.0)  # make the untrained dynamics respond to actions
    assert isinstance(model, ControllableModel)
    clips = torch.rand(6, 4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    first = delta_psnr(model, clips, seed=5, horizon=2)
    again = delta_psnr(model, [clips[:4], clips[4:]], seed=5, horizon=2)  # batched differently
    assert first.horizon == 2 and again.num_clips == 6
    assert torch.all(torch.isfinite(first.delta_psnr_t))
    assert first.delta_psnr_per_clip.abs().max() > 0  # the actions changed some generations
    assert torch.equal(first.psnr_inferred_t, again.psnr_inferred_t)  # inferred actions: no randomness
    assert torch.equal(first.delta_psnr_t, delta_psnr(model, clips, seed=5, horizon=2).delta_psnr_t)


_SHIFTS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (dy, dx) of latent actions 0..3


class ShiftWorld(nn.Module):
    """A test double with exactly known dynamics: latent action ``a`` rolls the frame by ``_SHIFTS[a]``.

    ``infer_actions`` recovers each transition's shift from the real clip, so generating with the
    inferred actions reproduces the true next frames.
    """

    num_actions = 4

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("anchor", torch.zeros(()))

    @staticmethod
    def step(frames_BCHW: Tensor, actions_B: Tensor) -> Tensor:
        return torch.stack(
            [f.roll(_SHIFTS[int(a)], dims=(-2, -1)) for f, a in zip(frames_BCHW, actions_B, strict=True)]
        )

    def infer_actions(self, video: Tensor) -> Tensor:
        errors = []
        for a in range(self.num_actions):
            moved = video[:, :-1].roll(_SHIFTS[a], dims=(-2, -1))
            errors.append((moved - video[:, 1:]).square().mean(dim=(-3, -2, -1)))
        return torch.stack(errors, dim=-1).argmin(dim=-1)

    def generate(self, prompt: Tensor, actions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        frames = [prompt]
        for n in range(actions.shape[1]):
            frames.append(self.step(frames[-1], actions[:, n]))
        return torch.stack(frames, dim=1)


def _shift_world_clips(num_clips: int, num_frames: int, seed: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    true_actions = torch.randint(0, 4, (num_clips, num_frames - 1), generator=gen)
    first = torch.rand(num_clips, 3, 8, 8, generator=gen)
    return ShiftWorld().generate(first, true_actions), true_actions


def test_model_that_follows_inferred_actions_scores_clearly_positive() -> None:
    model = ShiftWorld()
    # data seed != evaluation seed: the same seed would draw the true actions as the "random" ones
    clips, true_actions = _shift_world_clips(num_clips=12, num_frames=5, seed=10)
    assert torch.equal(model.infer_actions(clips), true_actions)  # the double is what it claims
    result = delta_psnr(model, clips, seed=0)
    assert result.horizon == 4
    assert torch.all(result.psnr_inferred_t > 90)  # exact reproduction (capped at 100 dB)
    assert torch.all(result.psnr_random_t < 60)
    assert torch.all(result.delta_psnr_t > 30)
    assert result.at(4) == pytest.approx(float(result.delta_psnr_t[3]))
    assert torch.all(result.delta_psnr_sem_t > 0)
    assert torch.allclose(result.delta_psnr_sem_t, result.delta_psnr_std_t / 12**0.5)
    json.dumps(result.to_dict())


def test_max_clips_horizon_and_errors() -> None:
    model = ShiftWorld()
    clips, _ = _shift_world_clips(num_clips=6, num_frames=5, seed=1)
    result = delta_psnr(model, [clips[:4], clips[4:]], max_clips=5, horizon=2)
    assert isinstance(result, ControllabilityResult)
    assert result.num_clips == 5 and result.delta_psnr_per_clip.shape == (5, 2)
    with pytest.raises(ValueError, match="not generated"):
        result.at(3)
    single = delta_psnr(model, clips[:1])
    assert torch.all(torch.isnan(single.delta_psnr_std_t))  # no spread from one clip
    with pytest.raises(ValueError, match="horizon"):
        delta_psnr(model, clips, horizon=5)
    with pytest.raises(ValueError, match="No clips"):
        delta_psnr(model, [])
    with pytest.raises(ValueError, match="B T C H W"):
        delta_psnr(model, clips[0])
