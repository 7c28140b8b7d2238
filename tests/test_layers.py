"""Reusable layers: attention, ST-transformer, patching, positional encodings, MLP, vector quantiser."""

from __future__ import annotations

import pytest
import torch

from worldmodels.layers import (
    Attention,
    FactorizedPosEmbed,
    Mlp,
    PatchEmbed,
    STTransformer,
    VectorQuantizer,
    frame_causal_mask,
    patch_grid,
    patchify,
    unpatchify,
    usage_statistics,
)


def _seeded(seed: int = 0) -> None:
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------- attention
def test_attention_explicit_head_dim_for_indivisible_width() -> None:
    _seeded()
    attn = Attention(dim=20, num_heads=3, head_dim=8)
    x = torch.randn(2, 5, 20)
    assert attn(x).shape == (2, 5, 20)
    assert attn.qkv.out_features == 3 * 3 * 8
    with pytest.raises(ValueError, match="head_dim"):
        Attention(dim=20, num_heads=3)


def test_attention_matches_reference_and_is_causal() -> None:
    _seeded()
    attn = Attention(dim=16, num_heads=2, qk_norm=None).eval()
    x = torch.randn(3, 6, 16)
    q, k, v = attn.qkv(x).chunk(3, dim=-1)
    split = lambda t: t.view(3, 6, 2, 8).transpose(1, 2)  # noqa: E731
    scores = split(q) @ split(k).transpose(-1, -2) / 8**0.5
    scores = scores.masked_fill(~torch.ones(6, 6, dtype=torch.bool).tril(), float("-inf"))
    ref = attn.proj((scores.softmax(-1) @ split(v)).transpose(1, 2).reshape(3, 6, 16))
    torch.testing.assert_close(attn(x, causal=True), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("qk_norm", ["rms", "layer", None])
def test_attention_kv_cache_equals_full_pass(qk_norm: str | None) -> None:
    _seeded()
    attn = Attention(dim=16, num_heads=4, qk_norm=qk_norm).eval()
    x = torch.randn(2, 7, 16)
    full = attn(x, causal=True)
    _, past = attn(x[:, :4], causal=True, return_kv=True)
    rest = attn(x[:, 4:], causal=True, past_kv=past)
    torch.testing.assert_close(rest, full[:, 4:], rtol=1e-5, atol=1e-5)


def test_attention_under_cpu_bf16_autocast() -> None:
    _seeded()
    attn = Attention(dim=32, num_heads=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(torch.randn(2, 5, 32), causal=True)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


@pytest.mark.parametrize("rotary", [True, False])
def test_rms_qk_norm_attention_training_gradients_equal_a_plain_reference(rotary: bool) -> None:
    """The stacked QK-norm path (one split, one norm, one rotation) against attention written out op by op."""
    from worldmodels.layers.rope import RotaryEmbedding, apply_rotary

    _seeded()
    attn = Attention(dim=16, num_heads=2, qk_norm="rms").train()
    with torch.no_grad():
        attn.q_norm.weight.uniform_(0.5, 1.5)
        attn.k_norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 16)
    phases = RotaryEmbedding(8).phases(torch.arange(2, 7)) if rotary else None

    def reference(x: torch.Tensor) -> torch.Tensor:
        q, k, v = attn.qkv(x).unflatten(-1, (3, 2, 8)).permute(2, 0, 3, 1, 4)  # three S H L E
        q, k = attn.q_norm(q), attn.k_norm(k)
        if phases is not None:
            q, k = apply_rotary(q, phases), apply_rotary(k, phases)
        mask = torch.ones(5, 5, dtype=torch.bool).tril()
        scores = (q @ k.transpose(-1, -2) / 8**0.5).masked_fill(~mask, float("-inf"))
        return attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(3, 5, 16))

    params = list(attn.parameters())
    out = attn(x, causal=True, rope=phases)
    ref = reference(x)
    grads = torch.autograd.grad(out.square().sum(), params)
    ref_grads = torch.autograd.grad(ref.square().sum(), params)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------- ST-transformer
@pytest.mark.parametrize("attention", ["spatiotemporal", "full"])
def test_st_transformer_is_causal_in_time(attention: str) -> None:
    _seeded()
    model = STTransformer(dim=32, depth=2, num_heads=4, attention=attention).eval()
    x = torch.randn(2, 6, 5, 32)
    out = model(x)
    for t in range(5):
        changed = x.clone()
        changed[:, t + 1 :] = torch.randn_like(changed[:, t + 1 :])
        out2 = model(changed)
        torch.testing.assert_close(out2[:, : t + 1], out[:, : t + 1], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(out2[:, t + 1], out[:, t + 1], atol=1e-3)


@pytest.mark.parametrize("attention", ["spatiotemporal", "full"])
def test_st_transformer_cache_equals_full_pass(attention: str) -> None:
    _seeded()
    model = STTransformer(dim=32, depth=3, num_heads=4, attention=attention).eval()
    x = torch.randn(2, 6, 5, 32)
    full = model(x)
    _, cache = model(x[:, :4], return_cache=True)
    assert cache.num_frames == 4
    torch.testing.assert_close(model(x[:, 4:5], cache=cache), full[:, 4:5], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(x[:, 4:], cache=cache), full[:, 4:], rtol=1e-5, atol=1e-5)
    _, longer = model(x[:, 4:5], cache=cache, return_cache=True)
    assert longer.num_frames == 5
    torch.testing.assert_close(model(x[:, 5:], cache=longer), full[:, 5:], rtol=1e-5, atol=1e-5)


def test_frame_causal_mask() -> None:
    mask = frame_causal_mask(2, 3, 2)
    expected = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]).bool()
    assert torch.equal(mask, expected)


def test_st_transformer_grad_checkpointing_matches() -> None:
    _seeded()
    model = STTransformer(dim=16, depth=2, num_heads=2)
    x = torch.randn(1, 3, 4, 16)
    model(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.grad_checkpointing = True
    model(x).sum().backward()
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- patches, positions, MLP
@pytest.mark.parametrize(("height", "width", "patch"), [(8, 8, 4), (90, 160, 4), (90, 160, 16), (7, 5, 2)])
def test_patchify_roundtrip(height: int, width: int, patch: int) -> None:
    video = torch.rand(2, 3, 3, height, width)
    patches = patchify(video, patch)
    h, w = patch_grid(height, width, patch)
    assert patches.shape == (2, 3, h, w, 3 * patch * patch)
    assert torch.equal(unpatchify(patches, patch, height, width), video)


def test_patch_grid_of_paper_frames() -> None:
    assert patch_grid(90, 160, 4) == (23, 40)
    assert patch_grid(90, 160, 16) == (6, 10)


def test_patch_embed_shape() -> None:
    embed = PatchEmbed(3, 4, 24)
    assert embed(torch.rand(2, 5, 3, 12, 8)).shape == (2, 5, 6, 24)


@pytest.mark.parametrize("kind", ["learned", "sinusoidal"])
def test_factorized_pos_embed(kind: str) -> None:
    pos = FactorizedPosEmbed(16, max_frames=5, grid=(2, 3), kind=kind)
    table = pos(5)
    assert table.shape == (5, 6, 16)
    torch.testing.assert_close(pos(2, offset=3), table[3:])
    assert not torch.allclose(table[0], table[1])
    assert not torch.allclose(table[:, 0], table[:, 1])
    with pytest.raises(ValueError, match="at most 5 frames"):
        pos(3, offset=3)
    assert ("time" in dict(pos.named_parameters())) == (kind == "learned")


def test_mlp_shape_and_width() -> None:
    mlp = Mlp(8, 32, out_dim=4)
    assert mlp(torch.randn(2, 3, 5, 8)).shape == (2, 3, 5, 4)


# ---------------------------------------------------------------------------------------- vector quantiser
def test_vq_picks_nearest_code_and_passes_gradients_straight_through() -> None:
    _seeded()
    vq = VectorQuantizer(4, 2, data_init=False, dead_code_threshold=0.0)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
    z = torch.tensor([[[0.9, 0.1], [0.1, 0.8], [-0.7, -0.9]]], requires_grad=True)
    out = vq(z)
    assert out.indices.tolist() == [[1, 2, 3]]
    torch.testing.assert_close(out.quantized, vq.codebook[out.indices].detach())
    (out.quantized * torch.tensor([1.0, 2.0])).sum().backward()
    torch.testing.assert_close(z.grad, torch.tensor([[[1.0, 2.0]] * 3]))  # identity: straight through
    assert vq.codebook.grad is None  # the decoder's gradient never reaches the codebook


def test_vq_losses_and_metrics() -> None:
    _seeded()
    vq = VectorQuantizer(8, 4, beta=0.5)
    out = vq(torch.randn(5, 6, 4))
    assert out.indices.shape == (5, 6) and out.quantized.shape == (5, 6, 4)
    m = out.metrics
    torch.testing.assert_close(out.loss, m["codebook_loss"] + 0.5 * m["commitment_loss"])
    assert 1.0 <= m["perplexity"] <= 8.0 and 0.0 < m["usage"] <= 1.0 and 0.0 <= m["usage_entropy"] <= 1.0
    assert out.histogram.sum() == 30
    for value in m.values():
        assert value.ndim == 0 and not value.requires_grad


def test_usage_statistics_extremes() -> None:
    uniform = usage_statistics(torch.ones(8))
    torch.testing.assert_close(uniform["perplexity"], torch.tensor(8.0))
    torch.testing.assert_close(uniform["usage_entropy"], torch.tensor(1.0))
    collapsed = usage_statistics(torch.tensor([10.0, 0, 0, 0]))
    torch.testing.assert_close(collapsed["perplexity"], torch.tensor(1.0))
    assert collapsed["usage_entropy"].abs() < 1e-6 and collapsed["usage"] == 0.25


def test_vq_data_init_spreads_codes_over_the_first_batch() -> None:
    _seeded()
    vq = VectorQuantizer(16, 3)
    z = torch.randn(200, 3) * 5 + 10
    out = vq(z)
    assert bool(vq.initialized)
    assert vq.codebook.detach().mean(0).sub(10).abs().max() < 3
    assert out.metrics["usage"] > 0.5


def test_vq_updates_nothing_in_eval_mode_or_through_nearest() -> None:
    _seeded()
    vq = VectorQuantizer(8, 4, ema_decay=0.9)
    state = {k: v.clone() for k, v in vq.state_dict().items()}
    vq.nearest(torch.randn(10, 4))
    vq.eval()
    vq(torch.randn(10, 4))
    for k, v in vq.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_vq_ema_moves_codes_toward_assigned_vectors() -> None:
    _seeded()
    vq = VectorQuantizer(2, 2, ema_decay=0.5, data_init=False, dead_code_threshold=0.0)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
        vq.ema_embed_sum.copy_(vq.codebook)
    assert not vq.codebook.requires_grad
    for _ in range(20):
        out = vq(torch.tensor([[1.0, 1.0], [9.0, 9.0]]))
    torch.testing.assert_close(vq.codebook, torch.tensor([[1.0, 1.0], [9.0, 9.0]]), atol=1e-3, rtol=0)
    assert out.metrics["codebook_loss"] == 0


def test_vq_resets_dead_codes_from_encoder_outputs() -> None:
    _seeded()
    vq = VectorQuantizer(4, 2, data_init=False, dead_code_threshold=0.5, usage_decay=0.5)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0], [100.0, -100.0]]))
    z = torch.randn(64, 2) * 0.1
    resets = sum(float(vq(z).metrics["dead_codes_reset"]) for _ in range(4))
    assert resets >= 3  # the three far codes at least
    assert vq.codebook.detach().abs().max() < 1.0  # all codes now lie among the encoder outputs
    assert vq(z).metrics["usage"] > 0.25


def test_vq_l2_normalized_codes() -> None:
    _seeded()
    vq = VectorQuantizer(8, 4, l2_normalize=True)
    out = vq(torch.randn(10, 4) * 7)
    torch.testing.assert_close(out.quantized.norm(dim=-1), torch.ones(10))
    torch.testing.assert_close(vq.lookup(out.indices), out.quantized)


def test_vq_under_bf16_autocast_returns_input_dtype() -> None:
    _seeded()
    vq = VectorQuantizer(8, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vq(torch.randn(10, 4).bfloat16())
    assert out.quantized.dtype == torch.bfloat16 and out.loss.dtype == torch.float32


def test_vq_rejects_wrong_width() -> None:
    with pytest.raises(ValueError, match="width 4"):
        VectorQuantizer(8, 4)(torch.randn(3, 5))


def test_codebook_loss_gradient_only_reaches_used_codes() -> None:
    _seeded()
    vq = VectorQuantizer(6, 2, data_init=False, dead_code_threshold=0.0)
    out = vq(torch.randn(3, 2))
    out.loss.backward()
    used = set(out.indices.tolist())
    for i in range(6):
        assert (vq.codebook.grad[i].abs().sum() > 0) == (i in used)


# ---------------------------------------------------------------------------------------- VQ state updates
def test_vq_reset_never_replaces_a_code_chosen_in_the_same_batch() -> None:
    _seeded()
    vq = VectorQuantizer(4, 2, data_init=False, dead_code_threshold=0.9, usage_decay=0.0)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0], [5.0, -5.0]]))
    # code 0 takes almost everything, code 1 one vector: by usage both 1 and 2, 3 are "dead"
    z = torch.cat([torch.randn(63, 2) * 0.1, torch.tensor([[5.0, 5.0]])])
    codes_before = vq.codebook.detach().clone()
    out = vq(z)
    assert out.indices[-1] == 1
    torch.testing.assert_close(vq.codebook[1].detach(), codes_before[1])  # chosen: kept, and its index still names it
    torch.testing.assert_close(vq.lookup(out.indices[-1:]), codes_before[1:2])
    assert not torch.equal(vq.codebook[2:].detach(), codes_before[2:])  # unchosen and rare: reset
    assert float(out.metrics["dead_codes_reset"]) == 2


def test_vq_deferred_updates_apply_once_per_commit_and_vanish_on_discard() -> None:
    _seeded()
    vq = VectorQuantizer(4, 2, ema_decay=0.5, dead_code_threshold=0.0).train()
    z = torch.randn(32, 2)
    vq(z)  # data init + one immediate update
    vq.defer_state_updates = True
    state = {k: v.clone() for k, v in vq.state_dict().items()}
    vq(z), vq(z + 1)
    for key, value in vq.state_dict().items():  # nothing changed yet
        torch.testing.assert_close(value, state[key], msg=key)
    vq.discard_state_updates()
    vq(z)
    assert vq.commit_state_updates() == {}
    # the commit applied exactly one forward's worth of statistics, as an immediate update would
    reference = VectorQuantizer(4, 2, ema_decay=0.5, dead_code_threshold=0.0).train()
    reference.load_state_dict(state)
    reference(z)
    for key, value in vq.state_dict().items():
        torch.testing.assert_close(value, reference.state_dict()[key], msg=key)


def test_vq_deferred_reset_reports_rows_and_skipped_first_step_undoes_data_init() -> None:
    _seeded()
    vq = VectorQuantizer(4, 2, dead_code_threshold=0.9, usage_decay=0.0).train()
    vq.defer_state_updates = True
    vq(torch.randn(16, 2))
    vq.discard_state_updates()
    assert not bool(vq.initialized)  # the skipped step left no trace, not even the data init
    vq(torch.randn(16, 2))
    vq.commit_state_updates()
    assert bool(vq.initialized)
    with torch.no_grad():
        vq.codebook[1:] = 50.0  # three codes nobody will choose
    vq(torch.randn(64, 2) * 0.1)
    rows = vq.commit_state_updates()["codebook"]
    assert rows.dtype == torch.bool and rows[1:].all()


def test_fsq_round_trip_gradient_and_no_state() -> None:
    from worldmodels.layers import FiniteScalarQuantizer

    _seeded()
    for levels in ([8, 5, 5, 5], [2, 2, 2], [3]):
        fsq = FiniteScalarQuantizer(levels).train()
        z = (torch.randn(500, len(levels)) * 2).requires_grad_()
        out = fsq(z)
        assert fsq.num_codes == torch.tensor(levels).prod() and out.loss == 0
        assert torch.equal(fsq.lookup(out.indices), out.quantized.detach())
        assert torch.equal(fsq.nearest(z), out.indices)
        assert torch.equal(fsq.indices_of(fsq.codes()), torch.arange(fsq.num_codes))
        assert float(out.quantized.detach().abs().max()) <= 1.0
        out.quantized.sum().backward()
        assert z.grad is not None and z.grad.abs().sum() > 0  # straight-through
        assert list(fsq.state_dict()) == []  # a fixed grid: nothing to save, nothing a forward can change
    with pytest.raises(ValueError, match="levels"):
        FiniteScalarQuantizer([1, 4])


def test_bf16_linears_multiply_in_bf16_inside_and_restore_fp32_outside() -> None:
    from worldmodels.layers.bf16_linear import Bf16Linears

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 32, bias=False))
    x = torch.randn(16, 64)
    with torch.no_grad():
        exact = net(x)
        everything = Bf16Linears(net, rows=16, margin=0.0)  # bf16 always "pays": every layer chosen
        assert everything.chosen == ["0", "2"]
        with everything:
            approx = net(x)
        assert approx.dtype == torch.float32 and not torch.equal(approx, exact)  # really multiplied in bf16
        torch.testing.assert_close(approx, exact, atol=0.05, rtol=0.05)
        assert torch.equal(net(x), exact)  # outside: fp32 again
        assert Bf16Linears(net, rows=16, margin=float("inf")).chosen == []
        net[0].weight.add_(1.0)  # a changed weight is cast again
        with everything:
            moved = net(x)
        torch.testing.assert_close(moved, net(x), atol=0.5, rtol=0.05)


def test_envs_accept_auto_bf16_and_refuse_other_values() -> None:
    from worldmodels.envs import WorldModelEnv

    env = WorldModelEnv("toy-world", bf16="auto")
    env.reset(seed=0)
    assert env.step(1)[0].shape[-1] == 3
    with pytest.raises(ValueError, match="bf16 must be"):
        WorldModelEnv("toy-world", bf16="fast")
