"""A world model whose tokens are continuous latents goes through the same core: build, train, generate, play, eval."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import worldmodels
from worldmodels.data.synthetic import SyntheticClipDataset
from worldmodels.envs import WorldModelEnv
from worldmodels.eval.evaluation import evaluate
from worldmodels.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_model_is_built_with_latent_dim_and_reads_float_tokens() -> None:
    model = worldmodels.build("toy-continuous-world")
    assert model.tokenizer.continuous and model.dynamics.continuous
    assert model.latent_shape == (4, 4, 4) and model.dynamics.vocab_size is None
    video = torch.rand(2, 4, 3, 16, 16)
    tokens = model.encode(video)
    assert tokens.shape == (2, 4, 4, 4, 4) and tokens.dtype == torch.float32
    assert not hasattr(model.dynamics, "mask_token_id")  # masked drafts are a discrete family's business


def test_a_discrete_tokenizer_with_a_continuous_dynamics_is_refused() -> None:
    with pytest.raises((ValueError, TypeError), match="continuous|latent_dim"):
        worldmodels.build("toy-continuous-world", tokenizer={"name": "toy-tokenizer", "patch": 4, "vocab_size": 16})


def test_training_lowers_both_losses_and_the_rollout_responds_to_actions(tmp_path) -> None:
    torch.manual_seed(0)
    data = SyntheticClipDataset(32, num_frames=4, image_size=16, seed=0)
    cfg = TrainConfig(stage="all", steps=60, batch_size=8, lr=3e-3, warmup=5, log_every=5, checkpoint_every=0,
                      image_every=0, run_dir=str(tmp_path / "run"), progress=False, tensorboard=False, device="cpu")
    result = train(cfg, model="toy-continuous-world", train_data=data)
    for stage in ("tokenizer", "dynamics"):
        losses = [r["loss"] for r in result.stages[stage].history if "loss" in r]
        assert losses[-1] < 0.7 * losses[0], f"{stage} loss did not fall: {losses[0]:.4f} -> {losses[-1]:.4f}"
    model = worldmodels.WorldModel.from_pretrained(result.final_dir).eval()
    prompt = data[0]["video"][:1][None]
    with torch.no_grad():
        a = model.generate(prompt[:, 0], torch.zeros(1, 3, dtype=torch.long))
        b = model.generate(prompt[:, 0], torch.full((1, 3), 3, dtype=torch.long))
        again = model.generate(prompt[:, 0], torch.zeros(1, 3, dtype=torch.long))
    assert a.shape == (1, 4, 3, 16, 16) and torch.equal(a, again)
    assert not torch.allclose(a[:, 1:], b[:, 1:]), "the rollout ignores its actions"

    report = evaluate(result.final_dir, data, split=None, max_clips=8, horizon=3, figure_clips=1, latent_steps=1)
    assert report.codebooks["tokenizer"] is None and "continuous latents" in report.to_markdown()
    assert report.headline()["recon_psnr"] > 10.0 and report.to_dict()["codebooks"]["tokenizer"] is None


def test_the_token_cache_keeps_float_latents_and_the_dynamics_loss_reads_them() -> None:
    from worldmodels.training.token_cache import TokenCachedDataset, encode_dataset

    model = worldmodels.build("toy-continuous-world")
    data = SyntheticClipDataset(4, num_frames=4, image_size=16, seed=1)
    with torch.no_grad():
        tokens = encode_dataset(data, model.encode, batch_size=3)
    assert tokens.dtype.kind == "f" and tokens.shape == (4, 4, 4, 4, 4)
    item = TokenCachedDataset(data, tokens)[2]
    assert item["tokens"].dtype == torch.float32
    torch.testing.assert_close(item["tokens"], model.encode(item["video"][None])[0].detach())
    video = torch.stack([data[i]["video"] for i in range(2)])
    cached = torch.stack([TokenCachedDataset(data, tokens)[i]["tokens"] for i in range(2)])
    loss_cached, _ = model.dynamics_loss(video, train_action_model=False, tokens=cached)
    loss_fresh, _ = model.dynamics_loss(video, train_action_model=False)
    torch.testing.assert_close(loss_cached, loss_fresh)


def test_the_env_plays_continuous_latents_and_passes_check_env() -> None:
    model = worldmodels.build("toy-continuous-world", sampler={"noise": 0.1})
    env = WorldModelEnv(model, max_episode_steps=5)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    for step in range(6):
        obs, reward, terminated, truncated, info = env.step(step % env.num_actions)
        assert obs.shape == (16, 16, 3) and env.context_tokens.is_floating_point()
    assert len(env.context_tokens[0]) == model.num_frames  # the window slid
    assert isinstance(env.action_space, gym.spaces.Discrete)
