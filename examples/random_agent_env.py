"""A learned world as a Gymnasium environment, played by a random agent.

``import worldmodels.envs`` registers ``worldmodels/WorldModel-v0``; ``gym.make`` it with a
checkpoint directory (or a preset name, random weights). The action space is
``Discrete(A)``, the latent actions; observations are ``H W 3`` uint8 frames; rewards are 0 and
episodes end only by truncation (``max_episode_steps``). Any agent written against the
Gymnasium API can act in the learned world.

    python examples/random_agent_env.py --checkpoint demo_out/run/dynamics/final --prompt level.png
    python examples/random_agent_env.py --tiny                     # genie-tiny, random weights, seconds
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import worldmodels.envs  # noqa: F401  (registers worldmodels/WorldModel-v0)
from worldmodels.play.export import save_rollout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a WorldModel.save_pretrained directory")
    parser.add_argument("--preset", default="genie-tiny", help="preset with random weights when no checkpoint")
    parser.add_argument("--prompt", help="image file for the first frame (default: a black frame)")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=16, help="steps per episode (max_episode_steps)")
    parser.add_argument("--sampler-steps", type=int, help="MaskGIT iterations per frame (default: the model's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the frames of the first episode to this .gif or .mp4")
    parser.add_argument("--tiny", action="store_true", help="1 episode of 3 steps, 2 MaskGIT steps")
    args = parser.parse_args(argv)
    if args.tiny:
        args.episodes, args.steps, args.sampler_steps = 1, 3, 2

    source = {"checkpoint": args.checkpoint} if args.checkpoint else {"model": args.preset}
    env = gym.make(worldmodels.envs.ENV_ID, **source, prompt=args.prompt, max_episode_steps=args.steps,
                   sampler_steps=args.sampler_steps)
    print(f"{worldmodels.envs.ENV_ID}: observations {env.observation_space}, actions {env.action_space}")
    env.action_space.seed(args.seed)

    first_episode: list[np.ndarray] = []
    for episode in range(args.episodes):
        obs, info = env.reset(seed=args.seed + episode)
        frames, actions = [obs], []
        start = time.perf_counter()
        truncated = terminated = False
        while not (terminated or truncated):
            action = int(env.action_space.sample())  # the random agent
            obs, reward, terminated, truncated, info = env.step(action)
            frames.append(obs)
            actions.append(action)
        seconds = time.perf_counter() - start
        print(f"episode {episode}: {len(actions)} steps, actions {actions}, "
              f"{len(actions) / seconds:.1f} frames/s, last info {info}")
        if episode == 0:
            first_episode = frames
    env.close()
    if args.out:
        print(f"wrote {save_rollout(first_episode, args.out, fps=8, scale=4)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
