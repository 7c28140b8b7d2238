"""Pixel reconstruction losses for tokenizers: plain MSE, or L1 with image gradients and hard patches.

Axis legend: ``B`` batch, ``T`` frames, ``C H W`` pixels, ``p`` patch side, ``P`` patches per frame.

Small sprites (CoinRun's player is about 5x7 of 64x64 pixels) hardly move a mean squared error, so
a tokenizer trained on it for minutes smooths them away. Two terms fix that at no extra cost:

* ``"l1+grad"``: L1 on the pixels plus L1 on their horizontal and vertical differences (edges
  count as much as flat areas, and errors are not squared away when small);
* ``hard_fraction``: add the mean error of the worst ``hard_fraction`` of ``p x p`` patches of each
  frame, so the few patches a tokenizer gets most wrong (the sprites) keep a large gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

RECON_LOSSES: tuple[str, ...] = ("mse", "l1+grad")
"""Names accepted by :func:`reconstruction_loss`."""


def _dx(x: Tensor) -> Tensor:
    return x[..., :, 1:] - x[..., :, :-1]


def _dy(x: Tensor) -> Tensor:
    return x[..., 1:, :] - x[..., :-1, :]


def check_recon_loss(kind: str, hard_fraction: float) -> None:
    """Validate the settings of :func:`reconstruction_loss` (for constructors: fail at build time).

    Raises:
        ValueError: for an unknown ``kind`` or a ``hard_fraction`` outside ``[0, 1]``.
    """
    if kind not in RECON_LOSSES:
        raise ValueError(f"Unknown reconstruction loss {kind!r}; choose one of {RECON_LOSSES}.")
    if not 0.0 <= hard_fraction <= 1.0:
        raise ValueError(f"hard_fraction must lie in [0, 1], got {hard_fraction}.")


def reconstruction_loss(
    recon: Tensor, target: Tensor, kind: str = "mse", hard_fraction: float = 0.0, patch: int = 4
) -> Tensor:
    """The reconstruction loss of ``recon`` against ``target``, frames in ``[0, 1]``.

    Shapes: ``recon, target: B T C H W`` (any leading axes) -> 0-d.

    Args:
        recon: the reconstruction.
        target: the frames.
        kind: ``"mse"`` or ``"l1+grad"`` (see the module docs).
        hard_fraction: weight-one extra term: the mean absolute error of the worst fraction of
            ``patch x patch`` patches of every frame (0 disables it).
        patch: the patch side of the hard-patch term.

    Raises:
        ValueError: for an unknown ``kind`` or a ``hard_fraction`` outside ``[0, 1]``.
    """
    check_recon_loss(kind, hard_fraction)
    recon, target = recon.float(), target.float()
    if kind == "mse":
        loss = F.mse_loss(recon, target)
    else:
        loss = F.l1_loss(recon, target) + F.l1_loss(_dx(recon), _dx(target)) + F.l1_loss(_dy(recon), _dy(target))
    if hard_fraction > 0:
        h, w = target.shape[-2:]
        error_FHW = (recon - target).abs().mean(-3).reshape(-1, h, w)
        patches_FP = F.avg_pool2d(error_FHW[:, None], patch, ceil_mode=True).flatten(1)
        k = max(1, round(hard_fraction * patches_FP.shape[1]))
        loss = loss + patches_FP.topk(k, dim=1).values.mean()
    return loss


def psnr_of_mse(mse: Tensor) -> Tensor:
    """PSNR in dB of a mean squared error of ``[0, 1]`` pixels (for logging)."""
    return -10 * torch.log10(mse.detach().clamp_min(1e-10))
