"""Learning-rate schedule: linear warmup, then cosine decay to a floor.

The schedule is a :class:`torch.optim.lr_scheduler.LambdaLR` over a plain function of the
step, so its ``state_dict()`` holds only numbers (it goes into a checkpoint as JSON).
"""

from __future__ import annotations

import functools
import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(step: int, *, total_steps: int, warmup: int, min_ratio: float) -> float:
    """The learning-rate multiplier of optimizer step ``step`` (0-based).

    Rises linearly over ``warmup`` steps to ``1`` (the first step already uses ``1 / warmup``),
    then follows half a cosine down to ``min_ratio`` at ``total_steps``.

    Args:
        step: the optimizer step about to be taken.
        total_steps: steps of the whole run.
        warmup: warmup steps (``0``: none).
        min_ratio: the multiplier at the end of the run.

    Returns:
        A multiplier in ``[min_ratio, 1]`` (during warmup in ``(0, 1]``).

    Example:
        >>> [round(warmup_cosine(s, total_steps=6, warmup=2, min_ratio=0.0), 3) for s in range(6)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    decay_steps = max(1, total_steps - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / decay_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup: int, min_ratio: float
) -> LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` following :func:`warmup_cosine`.

    Call ``scheduler.step()`` once after every optimizer step.
    """
    fn = functools.partial(warmup_cosine, total_steps=total_steps, warmup=warmup, min_ratio=min_ratio)
    return LambdaLR(optimizer, lr_lambda=fn)
