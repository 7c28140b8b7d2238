"""Which parts of a learned world's play loop run in bf16: measured per model, per batch, on its device.

A world model's environments (:class:`~worldmodels.envs.WorldModelEnv`, and
:class:`~worldmodels.envs.WorldModelVectorEnv`) take ``bf16=False`` (fp32), ``True`` (autocast) or
``"auto"``: the dynamics' linear layers whose shape multiplies faster in bf16
(:class:`~worldmodels.layers.bf16_linear.Bf16Linears`), kept only if a whole rollout step is then
faster, and the tokenizer's decode under autocast only if it is faster. Each choice is measured
once per model and batch size and remembered, so a second environment over the same model does
not measure again.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch

from worldmodels.layers.bf16_linear import Bf16Linears
from worldmodels.rollout import Rollout
from worldmodels.world_model import WorldModel

__all__ = ["bf16_linears", "check_bf16", "decode_in_bf16", "decode_pays_in_bf16", "measure_bf16_linears",
           "measure_decode_bf16"]


def check_bf16(bf16: bool | str) -> bool | str:
    """``False``, ``True`` or ``"auto"`` (see :class:`WorldModelEnv`'s ``bf16``); anything else is refused."""
    if bf16 in (False, True, "auto"):
        return bf16
    raise ValueError(f"bf16 must be False, True (autocast) or 'auto' (bf16 only where it is faster), got {bf16!r}.")


_BF16_CHOICES: weakref.WeakKeyDictionary[WorldModel, dict[tuple[str, int], Any]] = weakref.WeakKeyDictionary()
"""Per model, what ``bf16="auto"`` measured (so a second environment over it does not measure again)."""


def _remembered(model: WorldModel, what: str, batch: int, measure: Callable[[], Any]) -> Any:
    choices = _BF16_CHOICES.setdefault(model, {})
    if (what, batch) not in choices:
        choices[(what, batch)] = measure()
    return choices[(what, batch)]


def bf16_linears(model: WorldModel, batch: int, margin: float = 1.05) -> Bf16Linears | None:
    """The dynamics' bf16 linear layers for steps of ``batch`` frames, if they make a whole step faster.

    Measured once per model and batch (:func:`measure_bf16_linears`), then remembered.
    """
    return _remembered(model, "linears", batch, lambda: measure_bf16_linears(model, batch, margin))


@torch.inference_mode()
def measure_bf16_linears(model: WorldModel, batch: int, margin: float = 1.05) -> Bf16Linears | None:
    """The dynamics' bf16 linear layers for steps of ``batch`` frames, if they make a whole step faster.

    The layers are chosen per shape (:class:`~worldmodels.layers.bf16_linear.Bf16Linears`); then a
    few rollout steps from a blank frame are timed with and without them (alternated, best kept),
    since the casts around a layer can take back what its product gains. ``None`` when no layer
    is chosen or the steps are not at least ``margin`` times faster.
    """
    grid = getattr(model.dynamics, "position_grid", model.token_grid)  # positions per frame, where they are grouped
    fast = Bf16Linears(model.dynamics, rows=batch * int(grid[0]) * int(grid[1]))
    if not fast.chosen or getattr(model.tokenizer, "continuous", False):
        return None
    tokens = torch.zeros((batch, 1, *model.token_grid), dtype=torch.long, device=model.device)
    best = {False: float("inf"), True: float("inf")}
    generator = torch.Generator(device=tokens.device).manual_seed(0)
    action = torch.zeros(batch, dtype=torch.long, device=tokens.device)
    for _ in range(3):
        for use in (False, True):
            with fast if use else contextlib.nullcontext():
                rollout = Rollout(model, tokens)
                rollout.step(action, generator=generator)  # warm-up
                start = time.perf_counter()
                for _ in range(2):
                    rollout.step(action, generator=generator)
                best[use] = min(best[use], time.perf_counter() - start)
    return fast if best[False] >= margin * best[True] else None


def decode_in_bf16(model: WorldModel, bf16: bool | str, batch: int) -> bool:
    """Whether an environment with precision ``bf16`` decodes ``batch`` frames under bf16 autocast:
    always for ``True``, never for ``False``, for ``"auto"`` where :func:`decode_pays_in_bf16`."""
    return bf16 is True or (bf16 == "auto" and decode_pays_in_bf16(model, batch))


def decode_pays_in_bf16(model: WorldModel, batch: int, margin: float = 1.1) -> bool:
    """Whether decoding ``batch`` frames is faster under bf16 autocast (measured once per model: :func:`measure_decode_bf16`)."""
    return bool(_remembered(model, "decode", batch, lambda: measure_decode_bf16(model, batch, margin)))


@torch.inference_mode()
def measure_decode_bf16(model: WorldModel, batch: int, margin: float = 1.1) -> bool:
    """Whether the tokenizer decodes ``batch`` newest frames at least ``margin`` times faster under bf16 autocast.

    Measured once here (a few calls each way, alternated, best kept) on the model's device; only
    on CPUs (on a GPU use ``bf16=True``) and for discrete tokens.
    """
    device = model.device
    if device.type != "cpu" or getattr(model.tokenizer, "continuous", False):
        return False
    tokens = torch.zeros((batch, 1, *model.token_grid), dtype=torch.long, device=device)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(3):
        for bf16 in (False, True):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                model.tokenizer.decode_last(tokens)  # warm-up
                start = time.perf_counter()
                for _ in range(3):
                    model.tokenizer.decode_last(tokens)
                best[bf16] = min(best[bf16], time.perf_counter() - start)
    return best[False] >= margin * best[True]
