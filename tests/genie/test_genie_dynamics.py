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


LOSS_VARIANTS = {
    "plain": {},
    "copy": {"copy_prior": True},
    "grouped+copy+rope": {"token_grid": [4, 4], "token_patch": 2, "copy_prior": True, "temporal_pos": "rope"},
}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("variant", list(LOSS_VARIANTS))
def test_loss_is_cross_entropy_of_the_forward_logits_on_masked_tokens_only(
    make_dynamics, variant: str, mode: str
) -> None:
    """The loss builds logits for masked tokens only; it must equal (value and gradients) the
    cross-entropy of the full forward pass's logits at those tokens."""
    extra = LOSS_VARIANTS[variant]
    dyn = make_dynamics(**extra).train(mode == "train")
    h, w = extra.get("token_grid", [3, 4])
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 16, (2, 5, h, w), generator=g)
    tokens[:, 2:, 0] = tokens[:, 1:-1, 0]  # some tokens as in the frame before: the copy prior's bias applies
    emb = torch.randn(2, 4, 8, generator=g)
    torch.manual_seed(3)
    mask = dyn.random_mask(tokens)
    torch.manual_seed(3)
    loss, metrics = dyn.loss(tokens, emb)
    params = [p for p in dyn.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)

    logits = dyn(tokens.masked_fill(mask, dyn.mask_token_id), emb)
    reference = F.cross_entropy(logits[mask], tokens[mask])
    torch.testing.assert_close(loss, reference)
    for got, want in zip(grads, torch.autograd.grad(reference, params, allow_unused=True)):
        if want is None:
            assert got is None or not got.any()
        else:
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-4)
    accuracy = (logits[mask].argmax(-1) == tokens[mask]).float().mean()
    torch.testing.assert_close(metrics["masked_accuracy"], accuracy)
    torch.testing.assert_close(metrics["mask_rate"], mask[:, 1:].float().mean())
    assert set(metrics) == {"loss", "masked_accuracy", "mask_rate"}


def test_masked_loss_rejects_a_bad_mask(make_dynamics, random_tokens) -> None:
    dyn = make_dynamics()
    tokens, emb = random_tokens()
    with pytest.raises(ValueError, match="frame 0"):
        dyn.masked_loss(tokens, torch.ones_like(tokens, dtype=torch.bool), emb)
    with pytest.raises(ValueError, match="bool tensor"):
        dyn.masked_loss(tokens, torch.ones_like(tokens), emb)


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


# ---------------------------------------------------------------------------------------- grouped tokens, copy prior
VARIANTS = {
    "grouped": {"token_patch": 2},
    "grouped+copy+frame-mask": {"token_patch": 2, "copy_prior": True, "mask_mode": "frame", "mask_rate_min": 0.0},
    "copy": {"copy_prior": True},
}


def _tokens_4x4(batch: int = 2, frames: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return torch.randint(0, 16, (batch, frames, 4, 4), generator=g), torch.randn(batch, frames - 1, 8, generator=g)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_variants_are_causal_and_cached_equals_uncached(make_dynamics, variant: str, mode: str) -> None:
    torch.manual_seed(0)
    dyn = make_dynamics(token_grid=[4, 4], **VARIANTS[variant]).train(mode == "train")
    tokens, emb = _tokens_4x4()
    with torch.no_grad():
        logits = dyn(tokens, emb)
        assert logits.shape == (2, 5, 4, 4, 16)
        for t in range(4):
            changed = tokens.clone()
            changed[:, t + 1 :] = torch.randint(0, 17, changed[:, t + 1 :].shape)
            torch.testing.assert_close(dyn(changed, emb)[:, : t + 1], logits[:, : t + 1])
        dyn.eval()
        draft = tokens[:, 4].masked_fill(torch.rand(2, 4, 4) < 0.5, dyn.mask_token_id)
        cache = dyn.prefill(tokens[:, :4], emb)
        cached = dyn.next_logits(draft, cache)
        uncached = Dynamics.next_logits(dyn, draft, DynamicsCache(tokens[:, :4], emb))
    torch.testing.assert_close(cached, uncached, rtol=1e-5, atol=1e-5)


def test_grouped_positions_predict_each_token_of_their_group(make_dynamics) -> None:
    dyn = make_dynamics(token_grid=[4, 4], token_patch=2).eval()
    assert dyn.position_grid == (2, 2) and dyn.head.out_features == 4 * 16
    tokens, emb = _tokens_4x4()
    with torch.no_grad():
        logits = dyn(tokens, emb)
        changed = tokens.clone()
        changed[:, 2, 0, 1] = (changed[:, 2, 0, 1] + 1) % 16  # one token of the top-left group of frame 2
        other = dyn(changed, emb)
    # the same frame's other positions see it through spatial attention; a slot of the group is its own input
    assert (other[:, 2] - logits[:, 2]).abs().amax() > 1e-5
    torch.testing.assert_close(other[:, :2], logits[:, :2])
    with pytest.raises(ValueError, match="divide the token grid"):
        make_dynamics(token_grid=[3, 4], token_patch=2)


def test_copy_prior_favours_the_previous_token_and_ignores_masked_ones(make_dynamics) -> None:
    dyn = make_dynamics(token_grid=[4, 4], copy_prior=True).eval()
    plain = make_dynamics(token_grid=[4, 4]).eval()
    plain.load_state_dict({k: v for k, v in dyn.state_dict().items() if k != "copy_logit"})
    tokens, emb = _tokens_4x4()
    tokens[:, 1, 0, 0] = dyn.mask_token_id  # a masked token gives no prior to the next frame
    with torch.no_grad():
        diff = dyn(tokens, emb) - plain(tokens, emb)
    onehot = F.one_hot(tokens[:, 1:4].clamp_max(15), 16).float()
    onehot[:, 0, 0, 0] = 0
    torch.testing.assert_close(diff[:, 2:5], dyn.copy_logit.detach() * onehot)
    assert diff[:, 0].abs().amax() == 0 and diff[:, 1].abs().amax() > 0  # frame 0 has no previous frame


def test_frame_mask_mode_draws_one_rate_per_frame(make_dynamics) -> None:
    dyn = make_dynamics(mask_mode="frame", mask_rate_min=0.0)
    tokens = torch.zeros(256, 5, 3, 4, dtype=torch.long)
    mask = dyn.random_mask(tokens, generator=torch.Generator().manual_seed(0))
    assert not mask[:, 0].any()
    per_frame = mask[:, 1:].float().mean(dim=(2, 3))  # B T-1
    assert per_frame.std(dim=1).mean() > 0.15  # frames of one clip differ
    assert per_frame.min() == 0.0 and per_frame.max() == 1.0
    with pytest.raises(ValueError, match="mask_mode"):
        make_dynamics(mask_mode="token")
