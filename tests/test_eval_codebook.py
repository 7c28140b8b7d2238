"""Codebook usage and perplexity against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from worldmodels.eval import code_histogram, codebook_perplexity, codebook_stats, codebook_usage


def test_two_of_four_codes_used_equally() -> None:
    tokens = torch.tensor([[0, 0], [1, 1]])
    assert codebook_usage(tokens, 4) == pytest.approx(0.5)
    assert codebook_perplexity(tokens, 4) == pytest.approx(2.0)


def test_skewed_usage_hand_computed() -> None:
    indices = torch.tensor([0, 0, 0, 1])
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    stats = codebook_stats(indices, 2)
    assert stats.counts.tolist() == [3, 1]
    assert stats.entropy_nats == pytest.approx(entropy)
    assert stats.perplexity == pytest.approx(math.exp(entropy))
    assert stats.normalized_entropy == pytest.approx(entropy / math.log(2))
    assert stats.usage == 1.0 and stats.num_used == 2


def test_uniform_usage_gives_perplexity_k_and_collapse_gives_one() -> None:
    tokens = torch.arange(8).repeat(5).reshape(2, 5, 2, 2)  # B T h w, every code 5 times
    stats = codebook_stats(tokens, 8)
    assert stats.perplexity == pytest.approx(8.0)
    assert stats.normalized_entropy == pytest.approx(1.0)
    collapsed = codebook_stats(torch.full((3, 7), 5), 8)
    assert collapsed.perplexity == pytest.approx(1.0)
    assert collapsed.usage == pytest.approx(1 / 8)
    assert collapsed.normalized_entropy == pytest.approx(0.0)


def test_histogram_and_errors() -> None:
    assert code_histogram(torch.tensor([2, 2, 0]), 4).tolist() == [1, 0, 2, 0]
    with pytest.raises(ValueError, match=r"num_codes"):
        code_histogram(torch.tensor([0, 4]), 4)
    with pytest.raises(ValueError, match="integer"):
        code_histogram(torch.tensor([0.0, 1.0]), 4)
    with pytest.raises(ValueError, match="empty"):
        code_histogram(torch.zeros(0, dtype=torch.long), 4)


def test_to_dict_is_plain_data() -> None:
    d = codebook_stats(torch.tensor([0, 1, 1]), 3).to_dict()
    assert d["counts"] == [1, 2, 0] and d["num_used"] == 2
