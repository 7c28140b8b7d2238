"""``example-topk``: predict the next frame in one pass, sampling each token among its k best.

Axis legend: ``B`` batch, ``T`` context frames, ``h w`` token grid, ``V`` vocabulary, ``D`` action width.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from einops import rearrange
from torch import Tensor

import worldmodels
from worldmodels import Dynamics, Sampler


@worldmodels.register("sampler", "example-topk")
class TopKSampler(Sampler):
    """One-pass top-k sampling: every token of the next frame drawn at once from its k best ids.

    Args:
        k: how many of the most likely ids each token chooses among (1 is argmax).
        temperature: softmax temperature over those k logits.

    Shapes:
        ``sample(dynamics, tokens: B T h w, action_embeddings: B T D) -> B h w`` int64.
    """

    conformance_config: ClassVar[dict] = {"k": 3}

    def __init__(self, k: int = 5, temperature: float = 1.0) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}.")
        self.k, self.temperature = k, temperature

    def sample(
        self,
        dynamics: Dynamics,
        tokens: Tensor,
        action_embeddings: Tensor,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Sample the tokens ``B h w`` of the frame after ``tokens`` (see :class:`worldmodels.Sampler`)."""
        b, _, h, w = tokens.shape
        # the id the dynamics reads as "not decided yet" (MaskGIT's convention: one past the vocabulary)
        mask_id = getattr(dynamics, "mask_token_id", None)
        if mask_id is None:
            mask_id = dynamics.vocab_size
        draft_Bhw = torch.full((b, h, w), mask_id, dtype=torch.long, device=tokens.device)
        cache = dynamics.prefill(tokens, action_embeddings)
        logits_BhwV = dynamics.next_logits(draft_Bhw, cache)
        top_logits, top_ids = logits_BhwV.topk(min(self.k, logits_BhwV.shape[-1]), dim=-1)
        if self.temperature <= 0:
            return top_ids[..., 0]
        probs_NK = rearrange((top_logits / self.temperature).softmax(-1), "b h w k -> (b h w) k")
        choice_N = torch.multinomial(probs_NK.float().cpu(), 1, generator=generator).to(tokens.device)
        choice_Bhw = rearrange(choice_N, "(b h w) 1 -> b h w 1", b=b, h=h, w=w)
        return top_ids.gather(-1, choice_Bhw)[..., 0]
