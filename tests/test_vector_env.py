"""WorldModelVectorEnv: B learned worlds in batched calls, equal to B single worlds, with autoreset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import worldmodels
from worldmodels.envs import WorldModelEnv, WorldModelVectorEnv

pytestmark = pytest.mark.usefixtures("one_thread")


def _toy() -> worldmodels.WorldModel:
    torch.manual_seed(0)
    return worldmodels.build("toy-world").eval()  # toy-argmax: a deterministic sampler


def _prompts(n: int, frames: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (frames, 16, 16, 3), dtype=np.uint8) for _ in range(n)]


def test_batched_worlds_equal_single_worlds_step_for_step() -> None:
    model = _toy()
    prompts = _prompts(3)
    envs = WorldModelVectorEnv(model, num_envs=3)
    obs, _ = envs.reset(seed=0, options={"prompts": prompts})
    assert obs.shape == (3, 16, 16, 3) and obs.dtype == np.uint8
    assert envs.observation_space.shape == (3, 16, 16, 3) and envs.single_action_space.n == model.num_actions
    singles = [WorldModelEnv(model) for _ in range(3)]
    first = [env.reset(seed=0, options={"prompt": p})[0] for env, p in zip(singles, prompts)]
    np.testing.assert_array_equal(obs, np.stack(first))
    rng = np.random.default_rng(1)
    for _ in range(6):  # past num_frames = 4: the windows slide
        actions = rng.integers(0, model.num_actions, 3)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        expected = np.stack([env.step(int(a))[0] for env, a in zip(singles, actions)])
        np.testing.assert_array_equal(obs, expected)
        assert rewards.dtype == np.float32 and not terminated.any() and not truncated.any()
    for i, env in enumerate(singles):
        assert torch.equal(envs.context_tokens(i), env.context_tokens)


def test_finished_worlds_restart_on_the_next_step_while_the_others_go_on() -> None:
    model = _toy()
    envs = WorldModelVectorEnv(model, num_envs=2, max_episode_steps=2)
    first, _ = envs.reset(seed=0, options={"prompts": _prompts(2)})
    envs.step(np.array([0, 1]))
    _, _, terminated, truncated, info = envs.step(np.array([1, 1]))
    assert truncated.tolist() == [True, True] and not terminated.any() and info["frame_index"].tolist() == [2, 2]
    obs, rewards, _, truncated, info = envs.step(np.array([2, 3]))  # NEXT_STEP autoreset: the prompts again
    np.testing.assert_array_equal(obs, first)
    assert rewards.tolist() == [0.0, 0.0] and not truncated.any() and info["frame_index"].tolist() == [0, 0]
    assert all(len(envs.context_tokens(i)[0]) == 1 for i in range(2))


def test_worlds_of_different_context_lengths_are_grouped_and_stay_exact() -> None:
    model = _toy()
    long_prompt, short_prompt = _prompts(1, frames=3)[0], _prompts(1)[0]
    envs = WorldModelVectorEnv(model, num_envs=2)
    envs.reset(seed=0, options={"prompts": [long_prompt, short_prompt]})
    single_long, single_short = WorldModelEnv(model), WorldModelEnv(model)
    single_long.reset(seed=0, options={"prompt": long_prompt})
    single_short.reset(seed=0, options={"prompt": short_prompt})
    for action in (1, 2, 3):
        obs = envs.step(np.array([action, action]))[0]
        np.testing.assert_array_equal(obs[0], single_long.step(action)[0])
        np.testing.assert_array_equal(obs[1], single_short.step(action)[0])


def test_bad_actions_and_options_are_explained() -> None:
    envs = WorldModelVectorEnv(_toy(), num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.array([0, 0]))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="2 integers"):
        envs.step(np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="0..3"):
        envs.step(np.array([0, 9]))
    with pytest.raises(ValueError, match="one prompt per world"):
        envs.reset(options={"prompts": _prompts(3)})


def test_predicted_outcomes_reach_the_batched_step() -> None:
    pytest.importorskip("worldmodels_iris")
    torch.manual_seed(0)
    model = worldmodels.build(  # a dynamics that predicts rewards and episode ends
        "iris-tiny", image_size=32, num_frames=4, tokenizer={"channels": 8}, action_model={"num_actions": 4},
        dynamics={"dim": 32, "depth": 1, "num_heads": 2},
    ).eval()
    envs = WorldModelVectorEnv(model, num_envs=3, max_episode_steps=4)
    envs.reset(seed=0)
    obs, rewards, terminated, truncated, info = envs.step(np.array([0, 1, 2]))
    assert obs.shape == (3, 32, 32, 3) and rewards.shape == (3,) and (rewards != 0).all()
    assert info["termination_probability"].shape == (3,)
    np.testing.assert_array_equal(terminated, info["termination_probability"] > 0.5)
