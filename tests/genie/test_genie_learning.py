"""Each Genie part learns: its loss falls clearly within a few dozen steps on tiny seeded sprite clips."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodels.interfaces import LossOutput

pytest.importorskip("worldmodels_genie")


def _train(
    model: nn.Module, loss_fn: Callable[[Tensor], LossOutput], data: Tensor, steps: int, lr: float
) -> list[float]:
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        batch = data[torch.randint(0, data.shape[0], (8,), generator=g)]
        loss, _ = loss_fn(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _assert_learns(losses: list[float]) -> None:
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.7 * first, f"loss fell only from {first:.4f} to {last:.4f}"


def test_tokenizer_learns(make_tokenizer, clips32) -> None:
    tok = make_tokenizer(encoder_depth=1, decoder_depth=1)
    _assert_learns(_train(tok, tok.loss, clips32.video, steps=25, lr=2e-3))


def test_latent_action_model_learns(make_lam, clips32) -> None:
    """The LAM's decoder starts as a copy of the last frame (residual output); training with its
    inferred actions must predict the next frame clearly better than copying does."""
    lam = make_lam()
    video = clips32.video
    copy_mse = F.mse_loss(video[:, :-1], video[:, 1:]).item()
    losses = _train(lam, lambda v: lam.loss(v), video, steps=150, lr=2e-3)
    lam.eval()
    with torch.no_grad():
        q = lam.quantize(video)
        recon_mse = F.mse_loss(lam.predict_next(video[:, :-1], q.quantized), video[:, 1:]).item()
    assert recon_mse < 0.7 * copy_mse, f"next-frame MSE {recon_mse:.4f} vs copying {copy_mse:.4f} (losses {losses[-3:]})"


def _sprite_tokens(video: Tensor, levels: int = 16) -> Tensor:
    """Deterministic tokens of sprite clips: 4x4-pixel brightness, quantised to ``levels`` ids (``B T 8 8``)."""
    brightness = F.avg_pool2d(video.mean(2).flatten(0, 1)[:, None], 4)[:, 0]
    tokens = (brightness * levels).long().clamp(0, levels - 1)
    return tokens.unflatten(0, video.shape[:2])


def test_dynamics_learns_with_true_actions(make_dynamics, clips32) -> None:
    dyn = make_dynamics(vocab_size=16, token_grid=[8, 8], max_frames=4, action_dim=8)
    table = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))  # fixed embedding of the 5 true actions
    tokens, actions = _sprite_tokens(clips32.video), clips32.actions
    data = torch.cat([tokens.flatten(1), actions], dim=1)  # one tensor so batches stay aligned

    def loss_fn(batch: Tensor) -> LossOutput:
        return dyn.loss(batch[:, : 4 * 64].view(-1, 4, 8, 8), table[batch[:, 4 * 64 :]])

    _assert_learns(_train(dyn, loss_fn, data, steps=30, lr=3e-3))
