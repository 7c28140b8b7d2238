"""Codebook usage statistics of discrete indices (tokenizer tokens, latent actions).

Axis legend: ``...`` any shape of indices (tokens ``B T h w``, actions ``B T-1``), ``K`` the
codebook size (``V`` for a tokenizer, ``A`` for a latent action model).

A collapsed codebook uses few of its ``K`` codes: its usage fraction is small and its
perplexity (the effective number of codes, ``exp`` of the entropy of the usage distribution)
is far below ``K``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def code_histogram(indices: Tensor, num_codes: int) -> Tensor:
    """How often each code occurs.

    Shapes:
        ``indices``: ``...`` integer -> ``K`` int64 counts.

    Args:
        indices: code indices in ``[0, num_codes)``, any shape.
        num_codes: the codebook size ``K``.

    Returns:
        Counts per code (on the CPU).

    Raises:
        ValueError: if ``indices`` is not an integer tensor, is empty, or holds an index outside
            ``[0, num_codes)``.
    """
    if not isinstance(indices, Tensor):
        raise TypeError(f"indices must be a torch.Tensor of code indices, got {type(indices).__name__}.")
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise ValueError(
            f"indices must be an integer tensor of code indices, got dtype {indices.dtype}; "
            "pass tokenizer.encode(...) or infer_actions(...) output, not logits or embeddings."
        )
    if num_codes < 1:
        raise ValueError(f"num_codes must be at least 1, got {num_codes}.")
    if indices.numel() == 0:
        raise ValueError("indices is empty: codebook statistics need at least one index.")
    flat = indices.detach().reshape(-1).to("cpu", torch.int64)
    lo, hi = int(flat.min()), int(flat.max())
    if lo < 0 or hi >= num_codes:
        raise ValueError(
            f"indices lie in [{lo}, {hi}] but the codebook has {num_codes} codes (valid: 0..{num_codes - 1}); "
            "pass the right num_codes (tokenizer.vocab_size or model.num_actions) and drop mask ids."
        )
    return torch.bincount(flat, minlength=num_codes)


def entropy_of_counts(counts: Tensor) -> float:
    """Shannon entropy in nats of the distribution ``counts / counts.sum()`` (``0 log 0 = 0``).

    Shapes:
        ``counts``: ``K`` -> scalar.
    """
    counts_K = counts.detach().to("cpu", torch.float64).reshape(-1)
    total = float(counts_K.sum())
    if total <= 0:
        raise ValueError("entropy_of_counts: the counts sum to zero; there is no distribution to measure.")
    probs_K = counts_K[counts_K > 0] / total
    return float(-(probs_K * probs_K.log()).sum())


@dataclass
class CodebookStats:
    """Usage of a codebook of ``K`` codes.

    Attributes:
        counts: ``K`` int64, occurrences of each code.
        num_codes: ``K``.
        num_used: codes that occur at least once.
        usage: ``num_used / K``, in ``(0, 1]``.
        entropy_nats: entropy of the usage distribution in nats, in ``[0, log K]``.
        normalized_entropy: ``entropy_nats / log K`` in ``[0, 1]`` (1 = uniform use; defined as 1
            when ``K == 1``, the only possible distribution).
        perplexity: ``exp(entropy_nats)``, the effective number of codes, in ``[1, K]``.
    """

    counts: Tensor
    num_codes: int
    num_used: int
    usage: float
    entropy_nats: float
    normalized_entropy: float
    perplexity: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (counts as a list), for reports."""
        return {
            "counts": self.counts.tolist(),
            "num_codes": self.num_codes,
            "num_used": self.num_used,
            "usage": self.usage,
            "entropy_nats": self.entropy_nats,
            "normalized_entropy": self.normalized_entropy,
            "perplexity": self.perplexity,
        }


def codebook_stats(indices: Tensor, num_codes: int) -> CodebookStats:
    """Usage fraction, entropy and perplexity of a codebook from the indices it produced.

    Shapes:
        ``indices``: ``...`` integer (e.g. tokens ``B T h w`` or actions ``B T-1``).

    Args:
        indices: code indices in ``[0, num_codes)``.
        num_codes: the codebook size ``K``.

    Returns:
        :class:`CodebookStats`.
    """
    counts_K = code_histogram(indices, num_codes)
    entropy = entropy_of_counts(counts_K)
    num_used = int((counts_K > 0).sum())
    return CodebookStats(
        counts=counts_K,
        num_codes=num_codes,
        num_used=num_used,
        usage=num_used / num_codes,
        entropy_nats=entropy,
        normalized_entropy=entropy / math.log(num_codes) if num_codes > 1 else 1.0,
        perplexity=math.exp(entropy),
    )


def codebook_usage(indices: Tensor, num_codes: int) -> float:
    """Fraction of the ``K`` codes that occur at least once in ``indices``.

    Shapes:
        ``indices``: ``...`` integer -> scalar.
    """
    return codebook_stats(indices, num_codes).usage


def codebook_perplexity(indices: Tensor, num_codes: int) -> float:
    """``exp`` of the entropy (nats) of the code usage distribution: the effective number of codes.

    Equals ``K`` when all codes are used equally often and 1 when a single code is used.

    Shapes:
        ``indices``: ``...`` integer -> scalar.
    """
    return codebook_stats(indices, num_codes).perplexity
