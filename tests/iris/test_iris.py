"""The IRIS plug-in: causal information flow (train and eval mode), cached equals uncached decoding,
learning tokens, rewards and episode ends that follow the actions, and play through WorldModelEnv."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import worldmodels

pytest.importorskip("worldmodels_iris")

from worldmodels_iris import AutoregressiveSampler, IrisTransformer  # noqa: E402

GRID = (2, 3)
VOCAB = 8
ACTIONS = 3


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _transformer(dropout: float = 0.0, **kwargs) -> IrisTransformer:
    torch.manual_seed(0)
    args = dict(vocab_size=VOCAB, token_grid=list(GRID), max_frames=5, action_dim=ACTIONS, dim=32, depth=2,
                num_heads=2, dropout=dropout)
    return IrisTransformer(**{**args, **kwargs})


def _inputs(b: int = 2, t: int = 3, seed: int = 1) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (b, t, *GRID), generator=g)
    actions = F.one_hot(torch.randint(0, ACTIONS, (b, t - 1), generator=g), ACTIONS).float()
    return tokens, actions


def _logits(model: IrisTransformer, tokens: Tensor, actions: Tensor) -> Tensor:
    torch.manual_seed(123)  # the same dropout masks in training mode for every call
    return model(tokens, actions).flatten(2, 3)  # B T N V


# ------------------------------------------------------------------------------ information flow
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_token_is_predicted_only_from_what_precedes_it(mode: str) -> None:
    """Changing token k of frame t leaves the logits of frames < t and of tokens <= k of frame t
    unchanged, and changes the prediction of token k + 1 (information does flow forward)."""
    model = _transformer(dropout=0.1)
    model.train(mode == "train")
    tokens, actions = _inputs()
    base = _logits(model, tokens, actions)
    n = GRID[0] * GRID[1]
    for t in (1, 2):
        for k in (0, 2, n - 1):
            changed = tokens.clone().flatten(2)
            changed[:, t, k] = (changed[:, t, k] + 1) % VOCAB
            out = _logits(model, changed.view_as(tokens), actions)
            assert torch.equal(out[:, :t], base[:, :t]), f"frames before {t} saw token {k} of frame {t}"
            assert torch.equal(out[:, t, : k + 1], base[:, t, : k + 1]), f"token {k} of frame {t} leaked backwards"
            following = out[:, t, k + 1] if k + 1 < n else out[:, t + 1, 0] if t + 1 < tokens.shape[1] else None
            if following is not None:
                reference = base[:, t, k + 1] if k + 1 < n else base[:, t + 1, 0]
                assert not torch.allclose(following, reference), "the next token ignores the one before it"


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_an_action_reaches_only_the_frames_after_it(mode: str) -> None:
    model = _transformer(dropout=0.1)
    model.train(mode == "train")
    tokens, actions = _inputs(t=4)
    base = _logits(model, tokens, actions)
    for t in range(actions.shape[1]):
        changed = actions.clone()
        changed[:, t] = changed[:, t].roll(1, dims=-1)
        out = _logits(model, tokens, changed)
        assert torch.equal(out[:, : t + 1], base[:, : t + 1]), f"action {t} reached frame {t} or earlier"
        assert not torch.allclose(out[:, t + 1], base[:, t + 1]), f"action {t} does not reach frame {t + 1}"


def test_the_outcome_of_a_step_depends_on_its_action_and_not_on_later_frames() -> None:
    model = _transformer().eval()
    tokens, actions = _inputs(t=3)
    full = F.pad(actions, (0, 0, 0, 1))  # an action out of the last frame too
    full[:, -1, 0] = 1.0
    reward, done = model.predict_outcome(tokens, full)
    assert reward.shape == (2,) and done.shape == (2,)
    assert bool(((reward >= -1) & (reward <= 1)).all()) and bool(((done >= 0) & (done <= 1)).all())
    other = full.clone()
    other[:, -1] = torch.tensor([0.0, 0.0, 1.0])
    assert not torch.allclose(model.predict_outcome(tokens, other)[0], reward)
    cache = model.start_frame(tokens, full)
    torch.testing.assert_close(cache.reward, reward)
    torch.testing.assert_close(cache.terminated, done)


# ------------------------------------------------------------------------------ decoding
def test_cached_decoding_equals_the_full_recomputation() -> None:
    """Each cached step's logits equal a full pass over the sequence, and so do sampled frames."""
    model = _transformer().eval()
    tokens, actions = _inputs(t=3)
    full = torch.cat([actions, actions[:, :1]], dim=1)
    cache = model.start_frame(tokens, full)
    prefix = torch.zeros(2, 0, dtype=torch.long)
    for _ in range(GRID[0] * GRID[1]):
        torch.testing.assert_close(cache.logits, model.next_token_logits(tokens, full, prefix), atol=1e-5, rtol=0)
        token = cache.logits.argmax(-1)
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        cache = model.continue_frame(cache, token)
    for temperature in (0.0, 1.0):
        sampler = AutoregressiveSampler(temperature=temperature)
        cached = sampler.sample(model, tokens, full, generator=torch.Generator().manual_seed(5), use_cache=True)
        plain = sampler.sample(model, tokens, full, generator=torch.Generator().manual_seed(5), use_cache=False)
        assert cached.shape == (2, *GRID) and cached.dtype == torch.long
        assert torch.equal(cached, plain), f"cached and uncached sampling differ at temperature {temperature}"


def test_the_sampler_refuses_a_dynamics_that_is_not_autoregressive() -> None:
    model = worldmodels.build("toy-world")
    tokens = torch.zeros(1, 2, *model.dynamics.token_grid, dtype=torch.long) if hasattr(
        model.dynamics, "token_grid") else torch.zeros(1, 2, 4, 4, dtype=torch.long)
    with pytest.raises(TypeError, match="start_frame and continue_frame"):
        AutoregressiveSampler().sample(model.dynamics, tokens, torch.zeros(1, 2, model.action_model.action_dim))


# ------------------------------------------------------------------------------ learning
def _counter_world(b: int, t: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Frames show a counter s (every token is s); action a moves it by a - 1 (mod VOCAB); the
    reward is the sign of the move; the episode ends when the counter reaches 0."""
    state = torch.randint(1, VOCAB, (b,), generator=g)
    acts = torch.randint(0, ACTIONS, (b, t - 1), generator=g)
    states = [state]
    for i in range(t - 1):
        states.append((states[-1] + acts[:, i] - 1) % VOCAB)
    s_BT = torch.stack(states, 1)
    tokens = s_BT[:, :, None, None].expand(b, t, *GRID).contiguous()
    rewards = (acts - 1).float()
    terminated = (s_BT[:, 1:] == 0).long()
    return tokens, F.one_hot(acts, ACTIONS).float(), rewards, terminated


def test_a_trained_tiny_iris_follows_its_actions_and_predicts_rewards() -> None:
    model = _transformer()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(200):
        loss, metrics = model.loss(*_counter_world(16, 4, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.2 * first, f"loss fell only from {first:.3f} to {loss.item():.3f}"
    model.eval()
    tokens = torch.full((3, 2, *GRID), 4)
    moves = F.one_hot(torch.tensor([[1, 0], [1, 1], [1, 2]]), ACTIONS).float()  # then down, stay, up
    frames = AutoregressiveSampler(temperature=0.0).sample(model, tokens, moves)
    assert frames[:, 0, 0].tolist() == [3, 4, 5], f"the next frames {frames[:, 0, 0].tolist()} ignore the actions"
    reward, _ = model.predict_outcome(tokens, moves)
    assert reward.round().tolist() == [-1.0, 0.0, 1.0], f"predicted rewards {reward.tolist()}"
    at_one = torch.full((2, 2, *GRID), 1)
    _, done = model.predict_outcome(at_one, F.one_hot(torch.tensor([[1, 0], [1, 2]]), ACTIONS).float())
    assert done[0] > 0.5 > done[1], f"episode-end probabilities {done.tolist()} (moving to 0 ends it)"


# ------------------------------------------------------------------------------ the whole model
def _tiny_iris() -> worldmodels.WorldModel:
    return worldmodels.build(
        "iris-tiny", image_size=32, num_frames=4, tokenizer={"channels": 8}, action_model={"num_actions": 4},
        dynamics={"dim": 32, "depth": 1, "num_heads": 2},
    ).eval()


def test_iris_tiny_is_listed_and_builds_from_its_parts() -> None:
    assert "iris-tiny" in worldmodels.list_components("model")
    assert "iris-transformer" in worldmodels.list_components("dynamics")
    assert "autoregressive" in worldmodels.list_components("sampler")
    model = _tiny_iris()
    assert type(model.dynamics).__name__ == "IrisTransformer"
    assert model.action_model.uses_recorded_actions


def test_iris_plays_in_the_gymnasium_env_with_predicted_rewards(tmp_path: Path) -> None:
    from gymnasium.utils.env_checker import check_env

    from worldmodels.envs import ENV_ID, WorldModelEnv

    model = _tiny_iris()
    env = gym.make(ENV_ID, model=model, render_mode="rgb_array", max_episode_steps=20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught if "env_checker" in str(w.filename)] == []
    env = WorldModelEnv(model, max_episode_steps=3)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(1)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    assert isinstance(reward, float) and -1.0 <= reward <= 1.0 and reward != 0.0  # an untrained head is never exactly 0
    assert isinstance(terminated, bool) and 0.0 <= info["termination_probability"] <= 1.0
    model.save_pretrained(tmp_path / "iris")
    loaded = worldmodels.WorldModel.from_pretrained(tmp_path / "iris")
    env2 = WorldModelEnv(loaded, max_episode_steps=3)
    env2.reset(seed=0)
    assert env2.step(1)[1] == pytest.approx(reward, abs=1e-6)


def test_a_play_step_runs_the_context_once_and_its_outcome_matches_a_fresh_pass() -> None:
    from worldmodels.envs import WorldModelEnv

    model = _tiny_iris()
    dyn = model.dynamics
    env = WorldModelEnv(model, max_episode_steps=5)
    env.reset(seed=0)
    env.step(1)
    lengths: list[int] = []
    original = dyn._run

    def counting_run(x, kv=None):  # noqa: ANN001, ANN202
        lengths.append(int(x.shape[1]))
        return original(x, kv)

    dyn._run = counting_run  # type: ignore[method-assign]
    try:
        _, reward, _, _, info = env.step(2)
    finally:
        del dyn._run
    n = model.token_grid[0] * model.token_grid[1]
    long_passes = [length for length in lengths if length > 1]
    assert len(long_passes) == 1, f"the context ran {len(long_passes)} times in one step: {lengths}"
    assert len(lengths) == 1 + (n - 1)  # one context pass, then one position per further token
    # the remembered outcome is the one a fresh pass over the same step gives
    tokens, actions = env.context_tokens[:, :-1], env.context_actions
    dyn._last_step = None
    with torch.no_grad():
        fresh_reward, fresh_done = model.predict_outcome(tokens, actions)
    assert float(fresh_reward[0]) == pytest.approx(reward, abs=1e-6)
    assert float(fresh_done[0]) == pytest.approx(info["termination_probability"], abs=1e-6)
