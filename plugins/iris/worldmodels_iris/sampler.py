"""The autoregressive sampler: the next frame token by token, with a key/value cache.

Axis legend: ``B`` batch, ``T`` context frames, ``h w`` token grid, ``N = h * w``, ``V`` vocabulary.

With the cache, the context (and the action leading out of it) runs once
(:meth:`~worldmodels_iris.transformer.IrisTransformer.start_frame`) and each of the ``N`` tokens
of the new frame costs one position (:meth:`~worldmodels_iris.transformer.IrisTransformer.continue_frame`).
Without it, the whole sequence runs again for every token; both give the same tokens for the
same generator.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from worldmodels import Dynamics, DynamicsCache, Sampler, register


def _pick(logits_BV: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
    if temperature == 0:
        return logits_BV.argmax(-1)
    probs = (logits_BV.float() / temperature).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@register("sampler", "autoregressive")
class AutoregressiveSampler(Sampler):
    """Sample the tokens of the next frame one after the other (IRIS, GPT-style decoding).

    Needs a dynamics with ``start_frame``, ``continue_frame`` and ``next_token_logits``
    (``iris-transformer``).

    Shapes: ``sample(dynamics, tokens: B T h w, action_embeddings: B T E) -> B h w`` int64.

    Args:
        temperature: softmax temperature (0: argmax, deterministic).
    """

    conformance_model: ClassVar[str] = "iris-tiny"
    """The preset :mod:`worldmodels.testing` embeds this sampler in (it needs an autoregressive dynamics)."""
    conformance_config: ClassVar[dict[str, Any]] = {"temperature": 1.0}
    """Settings for :mod:`worldmodels.testing`'s conformance checks."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = argmax), got {temperature}.")
        self.temperature = float(temperature)

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
        """Decode the next frame's tokens in ``h * w`` steps.

        Args:
            dynamics: an autoregressive dynamics (``start_frame`` / ``continue_frame``).
            tokens: the context ``B T h w``.
            action_embeddings: ``B T E``; entry ``T-1`` leads into the new frame.
            generator: random generator for the token draws.
            use_cache: keep the keys and values between tokens (``False`` reruns the sequence).
            cache: unused: this sampler keeps its own per-token cache (``start_frame``), and the
                IRIS transformer opens no stream.
        """
        if not (hasattr(dynamics, "start_frame") and hasattr(dynamics, "continue_frame")):
            raise TypeError(
                f"The autoregressive sampler needs a dynamics that generates token by token (start_frame and "
                f"continue_frame, e.g. iris-transformer); {type(dynamics).__name__} has neither. Use its own "
                "sampler (maskgit for maskgit dynamics)."
            )
        b, _, h, w = tokens.shape
        n = h * w
        chosen: list[Tensor] = []
        generator_model: Any = dynamics  # checked above: it has start_frame and continue_frame
        state = generator_model.start_frame(tokens, action_embeddings)  # also the uncached path's first token
        for k in range(n):
            if use_cache or k == 0:
                logits = state.logits
            else:  # the plain path: the whole sequence again, with the tokens chosen so far
                logits = generator_model.next_token_logits(tokens, action_embeddings, torch.stack(chosen, 1))
            token = _pick(logits, self.temperature, generator)
            chosen.append(token)
            if use_cache and k < n - 1:
                state = generator_model.continue_frame(state, token)
        return torch.stack(chosen, 1).view(b, h, w)
