"""MaskGIT dynamics: causality, action conditioning, the training mask, and the key/value cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from worldmodels import Dynamics, DynamicsCache

pytest.importorskip("worldmodels_genie")


def test_forward_shape(make_dynamics, random_tokens) -> None:
    dyn = make_dynamics().eval()
    tokens, emb = random_tokens()
    assert dyn(tokens, emb).shape == (2, 5, 3, 4, 16)
    assert dyn.mask_token_id == 16


@pytest.mark.parametrize("attention", ["spatiotemporal", "full"])
def test_logits_are_causal_in_time(make_dynamics, random_tokens, attention: str) -> None:
    dyn = make_dynamics(attention=attention).eval()
    tokens, emb = random_tokens()
    with torch.no_grad():
        logits = dyn(tokens, emb)
        for t in range(4):
            changed_tokens, changed_emb = tokens.clone(), emb.clone()
            changed_tokens[:, t + 1 :] = torch.randint(0, 17, changed_tokens[:, t + 1 :].shape)
            changed_emb[:, t:] = torch.randn_like(changed_emb[:, t:])  # actions leading into frames > t
            other = dyn(changed_tokens, changed_emb)
            torch.testing.assert_close(other[:, : t + 1], logits[:, : t + 1])
            assert not torch.allclose(other[:, t + 1], logits[:, t + 1])


def test_action_leading_into_a_frame_conditions_that_frame(make_dynamics, random_tokens) -> None:
    dyn = make_dynamics().eval()
    tokens, emb = random_tokens()
    with torch.no_grad():
        logits = dyn(tokens, emb)
        changed = emb.clone()
        changed[:, 1] = torch.randn(2, 8)  # leads from frame 1 to frame 2
        other = dyn(tokens, changed)
    torch.testing.assert_close(other[:, :2], logits[:, :2])
    assert (other[:, 2] - logits[:, 2]).abs().amax() > 1e-4


def test_training_mask(make_dynamics, random_tokens) -> None:
    dyn = make_dynamics()
    tokens, _ = random_tokens(batch=64, frames=5)
    mask = dyn.random_mask(tokens, generator=torch.Generator().manual_seed(0))
    assert not mask[:, 0].any(), "the first frame must stay unmasked"
    rates = mask[:, 1:].float().mean(dim=(1, 2, 3))
    assert rates.min() > 0.3 and rates.max() <= 1.0  # per-clip rates drawn from U[0.5, 1], 48 tokens each
    assert 0.65 < rates.mean() < 0.85
    assert rates.std() > 0.05, "the rate must vary from clip to clip"


def test_loss_is_cross_entropy_on_masked_tokens_only(make_dynamics, random_tokens) -> None:
    dyn = make_dynamics().eval()
    tokens, emb = random_tokens()
    torch.manual_seed(3)
    mask = dyn.random_mask(tokens)
    torch.manual_seed(3)
    loss, metrics = dyn.loss(tokens, emb)
    logits = dyn(tokens.masked_fill(mask, dyn.mask_token_id), emb)
    torch.testing.assert_close(loss, F.cross_entropy(logits[mask], tokens[mask]))
    accuracy = (logits[mask].argmax(-1) == tokens[mask]).float().mean()
    torch.testing.assert_close(metrics["masked_accuracy"], accuracy)
    assert set(metrics) == {"loss", "masked_accuracy", "mask_rate"}


@pytest.mark.parametrize("attention", ["spatiotemporal", "full"])
@pytest.mark.parametrize("context", [1, 2, 4])
def test_cached_logits_equal_uncached(make_dynamics, random_tokens, attention: str, context: int) -> None:
    dyn = make_dynamics(attention=attention).eval()
    tokens, emb = random_tokens(frames=context + 1, actions=context)
    ctx, target = tokens[:, :context], tokens[:, context]
    with torch.no_grad():
        cache = dyn.prefill(ctx, emb)
        plain = DynamicsCache(ctx, emb)
        for masked_fraction in (1.0, 0.5, 0.0):  # drafts of successive MaskGIT iterations
            draft = target.masked_fill(torch.rand(target.shape) < masked_fraction, dyn.mask_token_id)
            cached = dyn.next_logits(draft, cache)
            uncached = Dynamics.next_logits(dyn, draft, plain)
            assert cached.shape == (2, 3, 4, 16)
            torch.testing.assert_close(cached, uncached, rtol=1e-5, atol=1e-5)


def test_cache_computes_only_the_new_frame(make_dynamics, random_tokens) -> None:
    """A quick, deterministic measurement: floating-point operations of one MaskGIT iteration."""
    dyn = make_dynamics().eval()
    tokens, emb = random_tokens(frames=5, actions=4)
    ctx, draft = tokens[:, :4], torch.full((2, 3, 4), dyn.mask_token_id)
    with torch.no_grad():
        cache = dyn.prefill(ctx, emb)
        with FlopCounterMode(display=False) as cached:
            dyn.next_logits(draft, cache)
        with FlopCounterMode(display=False) as uncached:
            Dynamics.next_logits(dyn, draft, DynamicsCache(ctx, emb))
    assert cached.get_total_flops() * 4 < uncached.get_total_flops()


def test_errors_name_the_problem(make_dynamics, random_tokens) -> None:
    dyn = make_dynamics()
    tokens, emb = random_tokens()
    with pytest.raises(ValueError, match="3x4 grid"):
        dyn(tokens[..., :2], emb)
    with pytest.raises(ValueError, match="B T-1 E"):
        dyn(tokens, emb[:, :2])
    with pytest.raises(ValueError, match="at most 5 frames"):
        dyn.prefill(tokens, torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="mask_rate"):
        make_dynamics(mask_rate_min=0.9, mask_rate_max=0.5)
