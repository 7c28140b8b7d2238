"""Rotary temporal positions and the rolling key/value stream: a frame costs one frame, cached == uncached.

The reference for a stream is the plain forward pass over the whole history with the sliding
attention window; the stream must give the same logits, frame after frame, long after the window
has slid, in eval and in training mode.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import worldmodels
from worldmodels.envs import WorldModelEnv, WorldModelVectorEnv
from worldmodels.layers import STTransformer
from worldmodels.layers.rope import RotaryEmbedding, apply_rotary
from worldmodels.layers.st_transformer import window_causal_mask
from worldmodels.rollout import Rollout

pytestmark = pytest.mark.usefixtures("one_thread")

DYN = dict(vocab_size=16, token_grid=[4, 4], max_frames=4, action_dim=8, dim=32, depth=3, num_heads=2,
           temporal_pos="rope")


def _dynamics(**overrides):
    torch.manual_seed(0)
    return worldmodels.build("maskgit", kind="dynamics", **{**DYN, **overrides})


# ---------------------------------------------------------------------------------------- rotary positions
def test_rotary_scores_depend_only_on_the_distance_even_a_million_frames_in() -> None:
    rope = RotaryEmbedding(16)
    q, k = torch.randn(1, 1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 1, 16, dtype=torch.float64)

    def score(i: int, j: int) -> float:
        qi = apply_rotary(q.float(), rope.phases(torch.tensor([i])))
        kj = apply_rotary(k.float(), rope.phases(torch.tensor([j])))
        return float((qi * kj).sum())

    near = score(5, 2)
    assert abs(score(1_000_005, 1_000_002) - near) < 1e-4
    assert abs(score(7, 2) - near) > 1e-3  # another distance, another score
    assert torch.allclose(apply_rotary(q.float(), rope.phases(torch.tensor([0]))), q.float())  # position 0: identity


def test_real_rotation_equals_the_complex_one() -> None:
    phases = RotaryEmbedding(16).phases(torch.tensor([0, 3, 1_000_007]))  # 3 F complex
    x = torch.randn(2, 3, 16)
    torch.testing.assert_close(apply_rotary(x, torch.view_as_real(phases)), apply_rotary(x, phases))
    assert not torch.allclose(apply_rotary(x, phases), x)


def test_window_causal_mask() -> None:
    mask = window_causal_mask(5, 2)
    assert mask.tolist() == [[k in (q - 1, q) and k >= 0 for k in range(5)] for q in range(5)]


# ---------------------------------------------------------------------------------------- the ST-transformer
@pytest.mark.parametrize("train", [False, True])
def test_st_stream_equals_the_windowed_full_pass_after_the_window_slides(train: bool) -> None:
    torch.manual_seed(0)
    net = STTransformer(32, depth=2, num_heads=2, temporal_rope=True, window=3).train(train)
    x = torch.randn(2, 11, 5, 32)
    full = net(x)
    _, stream = net.open_stream(x[:, :2])
    for t in range(2, 11):
        out = net.stream_step(x[:, t : t + 1], stream, commit=True)
        torch.testing.assert_close(out[:, 0], full[:, t], atol=1e-5, rtol=1e-5)
    assert all(k.shape == (2 * 5, 2, 3, 16) for k in stream.keys)  # W = 3 slots, however many frames


@pytest.mark.parametrize("train", [False, True])
def test_one_block_sees_exactly_its_window(train: bool) -> None:
    torch.manual_seed(0)
    net = STTransformer(16, depth=1, num_heads=2, temporal_rope=True, window=3).train(train)
    x = torch.randn(1, 8, 4, 16, requires_grad=True)
    out = net(x)[0, 6]  # a random weighting: the plain sum of a layer-normed output is constant (zero gradient)
    (out * torch.randn_like(out)).sum().backward()
    reached = (x.grad[0].abs().sum((1, 2)) > 0).tolist()
    assert reached == [False, False, False, False, True, True, True, False]  # frames 4, 5, 6 only


def _stream_against_full_pass(net: STTransformer, frames: int = 9) -> int:
    """Stream ``frames`` frames as a sampler does (refinement passes, then a commit riding with the
    next frame's first pass) and compare every output with the windowed full pass; returns passes run."""
    x = torch.randn(2, frames, 5, 32)
    full = net(x)
    _, stream = net.open_stream(x[:, :2])
    passes = 0
    with torch.no_grad():
        for t in range(2, frames):
            draft = x[:, t : t + 1] + torch.randn_like(x[:, t : t + 1])  # a refinement pass over a draft
            both = torch.cat([x[:, t - 1 : t], draft], 1) if t > 2 else draft
            net.stream_step(both, stream)  # from frame 3 on: frame t - 1's commit rides with frame t's first pass
            out = net.stream_step(x[:, t : t + 1], stream)  # the last pass, with the final input
            torch.testing.assert_close(out[:, 0], full[:, t], atol=1e-5, rtol=1e-5)
            passes += 2
    return passes


def test_compiled_stream_traces_as_one_graph_and_equals_the_full_pass() -> None:
    torch.manual_seed(0)
    net = STTransformer(32, depth=2, num_heads=2, temporal_rope=True, window=3).eval()
    _stream_against_full_pass(net)  # the eager reference path
    torch._dynamo.reset()
    net.compile_stream(backend="eager", fullgraph=True)  # a graph break or a Python value would fail here
    frames_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    _stream_against_full_pass(net)
    # one graph per shape (a pass, and a commit riding with a pass), not one per slot or frame
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - frames_before == 2


@pytest.mark.slow
def test_inductor_compiled_stream_equals_the_eager_one() -> None:
    torch.manual_seed(0)
    net = STTransformer(32, depth=2, num_heads=2, temporal_rope=True, window=3).eval()
    torch._dynamo.reset()
    net.compile_stream()
    _stream_against_full_pass(net)


def test_a_stream_needs_rotary_positions() -> None:
    with pytest.raises(ValueError, match="rotary"):
        STTransformer(16, depth=1, num_heads=2).open_stream(torch.randn(1, 2, 4, 16), window=3)


# ---------------------------------------------------------------------------------------- MaskGIT dynamics
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("extra", [{}, {"token_patch": 2, "copy_prior": True}])
def test_maskgit_stream_equals_the_full_history_pass(train: bool, extra: dict) -> None:
    dyn = _dynamics(**extra).train(train)
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 16, (2, 13, 4, 4), generator=g)
    emb = torch.randn(2, 12, 8, generator=g)
    with torch.no_grad():
        stream = dyn.open_stream(tokens[:, :2], emb[:, :1], frames=3)
        for t in range(2, 13):  # 13 frames through a 4-frame window
            cache = stream.prepare(emb[:, t - 1])
            draft = tokens[:, t].clone()
            draft[:, :2] = dyn.mask_token_id
            reference = tokens[:, : t + 1].clone()
            reference[:, t] = draft
            torch.testing.assert_close(dyn.next_logits(draft, cache), dyn(reference, emb[:, :t])[:, t],
                                       atol=1e-5, rtol=1e-5)
            stream.push(tokens[:, t])
    assert stream.frames == 13


def test_prefill_over_a_long_history_equals_the_full_pass() -> None:
    dyn = _dynamics().eval()
    tokens, emb = torch.randint(0, 16, (1, 9, 4, 4)), torch.randn(1, 9, 8)
    with torch.no_grad():
        cache = dyn.prefill(tokens[:, :8], emb[:, :8])
        torch.testing.assert_close(dyn.next_logits(tokens[:, 8], cache), dyn(tokens, emb[:, :8])[:, 8],
                                   atol=1e-5, rtol=1e-5)


def test_history_frames_and_absolute_models_keep_their_limit() -> None:
    assert _dynamics().history_frames(3) == 9  # 3 blocks, each cached frame carries its own 3-frame past
    absolute = _dynamics(temporal_pos="absolute")
    assert absolute.history_frames(3) == 3 and absolute.open_stream(torch.zeros(1, 1, 4, 4).long(),
                                                                     torch.zeros(1, 0, 8), 3) is None
    with pytest.raises(ValueError, match="at most 4 frames"):
        absolute(torch.zeros(1, 6, 4, 4).long(), torch.zeros(1, 5, 8))
    with pytest.raises(ValueError, match="temporal_pos"):
        _dynamics(temporal_pos="relative")


def test_rotary_training_lowers_the_loss() -> None:
    dyn = _dynamics().train()
    opt = torch.optim.AdamW(dyn.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 16, (4, 4, 4, 4), generator=g)
    tokens[:, 1:] = tokens[:, :1]  # a static world: learnable
    emb = torch.randn(4, 3, 8, generator=g)
    losses = []
    for _ in range(30):
        loss, _ = dyn.loss(tokens, emb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert dyn.pos.time is None  # no frame table to train: time is in the attention


# ---------------------------------------------------------------------------------------- rollouts and envs
def _genie(num_frames: int = 4, steps: int = 3, temperature: float = 1.0) -> worldmodels.WorldModel:
    small = dict(encoder_dim=32, encoder_depth=1, encoder_heads=2, decoder_dim=32, decoder_depth=1, decoder_heads=2)
    torch.manual_seed(0)
    return worldmodels.build(
        "genie-tiny", image_size=32, num_frames=num_frames, tokenizer=dict(small, name="st-vivit", vocab_size=64),
        action_model=small, dynamics=dict(dim=32, depth=2, num_heads=2, copy_prior=False),
        sampler={"steps": steps, "temperature": temperature},
    ).eval()


def test_a_rollout_frame_costs_the_same_however_many_were_played(monkeypatch) -> None:
    model = _genie()
    tokens = model.encode(torch.rand(1, 1, 3, 32, 32))
    rollout = model.rollout(tokens)
    assert rollout.stream is not None
    lengths: list[int] = []
    original = model.dynamics.transformer.stream_step

    def spy(x, stream, commit=False):
        lengths.append(x.shape[1])
        return original(x, stream, commit)

    monkeypatch.setattr(model.dynamics.transformer, "stream_step", spy)
    sizes = []
    for step in range(12):
        rollout.step(torch.tensor([step % model.num_actions]))
        sizes.append(sum(k.numel() for k in rollout.stream.st.keys))
    # 3 sampler passes per frame over its own tokens; a frame's commit pass rides with the next frame's first
    assert lengths == [1, 1, 1] + [2, 1, 1] * 11
    assert len(set(sizes)) == 1  # the buffers do not grow


def test_generate_with_and_without_the_stream_agree_long_after_the_slide() -> None:
    model = _genie(steps=3, temperature=1.0)
    prompt = torch.rand(1, 2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    actions = torch.tensor([[0, 5, 7, 2, 1, 1, 3, 0, 6, 4]])
    cached = model.generate(prompt, actions, generator=torch.Generator().manual_seed(4))
    uncached = model.generate(prompt, actions, generator=torch.Generator().manual_seed(4), use_cache=False)
    torch.testing.assert_close(cached, uncached)


def test_rollouts_split_and_join_without_changing_a_frame() -> None:
    model = _genie(temperature=0.0)
    tokens = model.encode(torch.rand(3, 1, 3, 32, 32, generator=torch.Generator().manual_seed(5)))
    together, alone = model.rollout(tokens), [model.rollout(tokens[i : i + 1]) for i in range(3)]
    for step in range(6):
        action = torch.tensor([step % 8, (step + 3) % 8, 1])
        if step == 3:  # split into two cohorts and join them again
            together = Rollout.cat([together.select([0, 1]), together.select([2])])
        together.step(action)
        for i, r in enumerate(alone):
            r.step(action[i : i + 1])
    torch.testing.assert_close(together.tokens, torch.cat([r.tokens for r in alone]))


def test_vector_env_with_streams_equals_single_envs_through_partial_resets() -> None:
    model = _genie(temperature=0.0)
    prompts = [np.random.default_rng(i).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8) for i in range(3)]
    envs = WorldModelVectorEnv(model, num_envs=3, max_episode_steps=None)
    envs.reset(seed=0, options={"prompts": prompts})
    singles = [WorldModelEnv(model) for _ in range(3)]
    for env, prompt in zip(singles, prompts):
        env.reset(seed=0, options={"prompt": prompt})
    rng = np.random.default_rng(1)
    for step in range(9):
        if step == 4:  # world 1 ends its episode: it restarts on the next step while 0 and 2 go on
            envs._needs_reset[1] = True
        actions = rng.integers(0, model.num_actions, 3)
        obs = envs.step(actions)[0]
        for i, (env, a) in enumerate(zip(singles, actions)):
            if step == 4 and i == 1:
                expected = env.reset(seed=0, options={"prompt": prompts[1]})[0]
            else:
                expected = env.step(int(a))[0]
            np.testing.assert_array_equal(obs[i], expected)
    assert len(envs._cohorts) == 2  # the restarted world is at another point of its stream
