"""Learned world models as Gymnasium environments.

Importing this package registers :class:`~worldmodels.envs.world_model_env.WorldModelEnv` with
Gymnasium under :data:`ENV_ID` (``"worldmodels/WorldModel-v0"``); pass ``model=`` (a
:class:`~worldmodels.WorldModel` or preset name) or ``checkpoint=`` (a checkpoint directory)::

    import gymnasium as gym
    import worldmodels.envs

    env = gym.make("worldmodels/WorldModel-v0", checkpoint="runs/genie-tiny/model", max_episode_steps=100)

Without importing it first, ``gym.make("worldmodels.envs:worldmodels/WorldModel-v0", ...)`` imports
it on the fly.
"""

from __future__ import annotations

import gymnasium

from worldmodels.envs.prompts import PromptError, PromptLike, frame_to_uint8, prompt_to_video
from worldmodels.envs.vector_env import WorldModelVectorEnv
from worldmodels.envs.world_model_env import WorldModelEnv, compile_world_model, load_world_model

ENV_ID = "worldmodels/WorldModel-v0"
"""The Gymnasium id of :class:`WorldModelEnv` (kwargs ``model=`` or ``checkpoint=``)."""

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="worldmodels.envs.world_model_env:WorldModelEnv")

__all__ = [
    "WorldModelVectorEnv",
    "ENV_ID",
    "PromptError",
    "PromptLike",
    "WorldModelEnv",
    "compile_world_model",
    "frame_to_uint8",
    "load_world_model",
    "prompt_to_video",
]
