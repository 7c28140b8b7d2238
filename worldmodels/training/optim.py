"""The optimizer: AdamW with weight decay on the weights of linear and convolutional layers only.

Decoupled weight decay pulls parameters towards zero. That regularises the matrices of linear and
convolutional layers; on biases, normalisation gains, embedding tables (token embeddings, position
tables) and quantiser codebooks it only erases what they store, so the usual recipes (GPT-2,
MaskGIT, timm) leave those undecayed, and so do we.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

DECAYED_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
)  # fmt: skip
"""Layers whose ``weight`` is decayed; every other parameter is not."""


def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trainable parameters of ``module``.

    Args:
        module: the (possibly wrapped) model.
        weight_decay: the decay of the weights of :data:`DECAYED_LAYERS`.

    Returns:
        Up to two groups, ``{"params": [...], "weight_decay": weight_decay}`` and
        ``{"params": [...], "weight_decay": 0.0}``, leaving out empty ones.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for sub in module.modules():
        for name, param in sub.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (decay if isinstance(sub, DECAYED_LAYERS) and name == "weight" else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(
    module: nn.Module, *, lr: float, betas: Iterable[float], eps: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups`."""
    b1, b2 = (float(b) for b in betas)
    return torch.optim.AdamW(parameter_groups(module, weight_decay), lr=lr, betas=(b1, b2), eps=eps)


@torch.no_grad()
def clear_moments(optimizer: torch.optim.Optimizer, param: nn.Parameter, rows: torch.Tensor) -> None:
    """Zero the AdamW moments of some rows of ``param`` (rows a quantiser re-initialised).

    Args:
        optimizer: the optimizer holding ``param``.
        param: the parameter (e.g. a codebook ``K E``).
        rows: ``K`` bool, the rows to clear.
    """
    state = optimizer.state.get(param)
    if not state:
        return
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        moment = state.get(key)
        if isinstance(moment, torch.Tensor) and moment.shape == param.shape:
            moment[rows.to(moment.device)] = 0
