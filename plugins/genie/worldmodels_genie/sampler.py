"""Samplers turning the dynamics model's logits into the next frame's tokens.

Axis legend: ``B`` batch, ``T`` context frames, ``h w`` token grid, ``N = h * w``, ``V`` vocabulary,
``E`` action embedding width.

``maskgit`` (Chang et al., 2022, as used by Genie): start from a fully masked frame; at each of
``steps`` iterations predict every token, then fix a number of the still-masked ones so that the
count left masked follows a schedule (cosine by default), until none is left. Which tokens are
fixed is chosen at random (the paper's "random sampling") or by confidence. ``argmax`` fills the
whole frame in one pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from worldmodels import Dynamics, DynamicsCache, Sampler, register

SCHEDULES: dict[str, Callable[[float], float]] = {
    "cosine": lambda r: math.cos(math.pi / 2 * r),
    "linear": lambda r: 1.0 - r,
}
"""Mask schedules: the fraction of tokens still masked after a fraction ``r`` of the steps."""

ORDERS: tuple[str, ...] = ("random", "confidence")
"""How the tokens fixed at a step are chosen among the masked ones."""


def cosine_schedule(ratio: float) -> float:
    """Fraction of tokens still masked after a fraction ``ratio`` of the steps: ``cos(pi/2 * ratio)``."""
    return SCHEDULES["cosine"](ratio)


def masked_counts(num_tokens: int, steps: int, schedule: str = "cosine") -> list[int]:
    """How many tokens remain masked after each MaskGIT step.

    After step ``i`` (1-based) ``floor(num_tokens * schedule(i / steps))`` tokens stay masked,
    kept strictly decreasing while any are masked (so every step fixes at least one token when
    ``steps <= num_tokens``), and 0 after the last step.

    Args:
        num_tokens: ``N``, tokens of one frame.
        steps: number of MaskGIT iterations (at least 1).
        schedule: a key of :data:`SCHEDULES`.

    Returns:
        ``steps`` non-increasing counts ending in 0; ``tokens fixed at step i = previous - counts[i]``.

    Example:
        >>> masked_counts(64, 8)
        [62, 59, 53, 45, 35, 24, 12, 0]
    """
    if steps < 1:
        raise ValueError(f"MaskGIT needs at least 1 step, got steps={steps}.")
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown mask schedule {schedule!r}; choose one of {sorted(SCHEDULES)}.")
    fn = SCHEDULES[schedule]
    counts, remaining = [], num_tokens
    for i in range(1, steps + 1):
        target = 0 if i == steps else math.floor(num_tokens * fn(i / steps))
        target = max(0, min(target, remaining - 1))
        counts.append(target)
        remaining = target
    return counts


def sample_categorical(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One draw per row of ``probs`` (rows of ``V`` probabilities) by inverting the cumulative sum.

    One uniform number per draw: on CPU about 20x cheaper than :func:`torch.multinomial`, which
    draws an exponential per category. Categories of probability 0 are never drawn (but for
    rounding in the last place of the cumulative sum).

    Shapes: ``probs: ... V -> ...`` int64.
    """
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[:-1], generator=generator, device=probs.device, dtype=cdf.dtype)
    index = torch.searchsorted(cdf, (u * cdf[..., -1])[..., None].contiguous(), right=True).squeeze(-1)
    return index.clamp_max(probs.shape[-1] - 1)


def mask_token_id(dynamics: Dynamics) -> int:
    """The id a dynamics reads as "not decided yet": its ``mask_token_id``, else MaskGIT's convention ``vocab_size``.

    Raises:
        TypeError: for a dynamics over continuous latents (there are no token ids to mask).
    """
    mask_id = getattr(dynamics, "mask_token_id", None)
    if mask_id is None:
        mask_id = getattr(dynamics, "vocab_size", None)
    if mask_id is None or getattr(dynamics, "continuous", False):
        raise TypeError(
            f"This sampler refines a draft of masked token ids, but {type(dynamics).__name__} reads continuous "
            "latents. Use the dynamics' own sampler."
        )
    return int(mask_id)


def _next_logits_fn(
    dynamics: Dynamics, tokens: Tensor, action_embeddings: Tensor, use_cache: bool, cache: DynamicsCache | None
) -> tuple[Callable[[Tensor], Tensor], DynamicsCache]:
    if cache is not None:  # prepared by a stream
        prepared = cache
        return lambda draft: dynamics.next_logits(draft, prepared), prepared
    if use_cache:
        cache = dynamics.prefill(tokens, action_embeddings)
        return lambda draft: dynamics.next_logits(draft, cache), cache
    cache = DynamicsCache(tokens, action_embeddings)  # the interface's plain, uncached path
    return lambda draft: Dynamics.next_logits(dynamics, draft, cache), cache


@register("sampler", "maskgit")
class MaskGITSampler(Sampler):
    """MaskGIT iterative decoding: ``steps`` rounds of predicting all tokens and fixing some on a schedule.

    Every token is fixed exactly once and never changed afterwards; all are fixed by the last step.
    With ``temperature == 0`` decoding is greedy and deterministic: tokens are the argmax and the
    most confident ones are fixed first, whatever ``order`` says.

    Shapes: ``sample(dynamics, tokens: B T h w, action_embeddings: B T E) -> B h w`` int64.

    Args:
        steps: iterations (paper: 25).
        temperature: softmax temperature of token sampling (paper: 2); 0 = argmax.
        order: ``"random"`` (paper) or ``"confidence"``: which masked tokens are fixed at a step.
        schedule: ``"cosine"`` or ``"linear"``: how many tokens remain masked after each step.
    """

    conformance_config: ClassVar[dict[str, Any]] = {"steps": 4}
    """Few steps for :mod:`worldmodels.testing`'s conformance checks."""

    def __init__(
        self, steps: int = 25, temperature: float = 2.0, order: str = "random", schedule: str = "cosine"
    ) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"MaskGIT needs at least 1 step, got steps={steps}.")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = argmax), got {temperature}.")
        if order not in ORDERS:
            raise ValueError(f"order={order!r} is not one of {ORDERS}.")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule={schedule!r} is not one of {sorted(SCHEDULES)}.")
        self.steps, self.temperature, self.order, self.schedule = steps, float(temperature), order, schedule

    @torch.no_grad()
    def sample(
        self,
        dynamics: Dynamics,
        tokens: Tensor,
        action_embeddings: Tensor,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        cache: DynamicsCache | None = None,
    ) -> Tensor:
        """Decode the next frame's tokens.

        Shapes: ``tokens: B T h w``, ``action_embeddings: B T E`` (entry ``T-1`` leads into the
        new frame) -> ``B h w`` int64.

        Args:
            dynamics: the model predicting logits.
            tokens: the context.
            action_embeddings: the actions of the context transitions and of the new one.
            generator: random generator (on the tokens' device) for token and order sampling.
            use_cache: use the dynamics' key/value cache (:meth:`Dynamics.prefill`); ``False``
                reruns the whole context at every step.
            cache: a cache prepared by a :class:`~worldmodels.DynamicsStream` (instead of prefill).
        """
        b, _, h, w = tokens.shape
        n = h * w
        device = tokens.device
        next_logits, _ = _next_logits_fn(dynamics, tokens, action_embeddings, use_cache, cache)
        draft_BN = torch.full((b, n), mask_token_id(dynamics), dtype=torch.long, device=device)
        masked_BN = torch.ones(b, n, dtype=torch.bool, device=device)
        remaining = n
        for target in masked_counts(n, self.steps, self.schedule):
            fix = remaining - target
            if fix == 0:
                continue
            logits_BNV = next_logits(draft_BN.view(b, h, w)).flatten(1, 2).float()
            if self.temperature == 0:
                confidence_BN, sampled_BN = logits_BNV.log_softmax(-1).max(-1)
            else:
                probs_BNV = (logits_BNV / self.temperature).softmax(-1)
                sampled_BN = sample_categorical(probs_BNV, generator)
                confidence_BN = probs_BNV.gather(-1, sampled_BN[..., None])[..., 0]
            if self.temperature == 0 or self.order == "confidence":
                score_BN = confidence_BN
            else:
                score_BN = torch.rand(b, n, generator=generator, device=device)
            score_BN = score_BN.masked_fill(~masked_BN, float("-inf"))
            chosen_BK = score_BN.topk(fix, dim=-1).indices
            draft_BN.scatter_(1, chosen_BK, sampled_BN.gather(1, chosen_BK))
            masked_BN.scatter_(1, chosen_BK, False)
            remaining = target
        return draft_BN.view(b, h, w)


@register("sampler", "argmax")
class ArgmaxSampler(Sampler):
    """Single pass: the most likely token everywhere, from a fully masked frame (fast, for speed tests).

    Shapes: ``sample(dynamics, tokens: B T h w, action_embeddings: B T E) -> B h w`` int64.
    """

    def __init__(self) -> None:
        super().__init__()

    @torch.no_grad()
    def sample(
        self,
        dynamics: Dynamics,
        tokens: Tensor,
        action_embeddings: Tensor,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        cache: DynamicsCache | None = None,
    ) -> Tensor:
        """Decode the next frame's tokens in one pass (``generator`` is unused)."""
        b, _, h, w = tokens.shape
        next_logits, _ = _next_logits_fn(dynamics, tokens, action_embeddings, use_cache, cache)
        draft = torch.full((b, h, w), mask_token_id(dynamics), dtype=torch.long, device=tokens.device)
        return next_logits(draft).argmax(-1)
