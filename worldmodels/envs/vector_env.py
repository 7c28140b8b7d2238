"""``B`` learned worlds stepped together: a :class:`gymnasium.vector.VectorEnv` over one world model.

Axis legend: ``B`` worlds (``num_envs``), ``T`` kept frames of one world, ``h w`` token grid,
``H W`` pixels.

Worlds started together form a cohort: one batched :class:`~worldmodels.rollout.Rollout` (tokens,
actions and, for a dynamics that streams, its rolling key/value buffers). Every
:meth:`~WorldModelVectorEnv.step` advances each cohort in one batched call (between resets, that
is all the worlds at once) and decodes the newest frames in one batch. A world that is reset
leaves its cohort and continues from its own prompt while the others go on; cohorts that reach
the same point (same kept length, same stream position) merge again.

Episodes end by the model's predicted termination (for dynamics that predict outcomes) or by
``max_episode_steps``; a finished world is reset on the *next* call of ``step`` (gymnasium's
``NEXT_STEP`` autoreset: that call ignores its action and returns the new first frame with
reward 0).

Example:
    >>> from worldmodels.envs import WorldModelVectorEnv
    >>> envs = WorldModelVectorEnv("genie-tiny", num_envs=16, max_episode_steps=100)  # doctest: +SKIP
    >>> obs, info = envs.reset(seed=0)                # obs: 16 H W 3 uint8           # doctest: +SKIP
    >>> obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from torch import Tensor

from worldmodels.envs.precision import bf16_linears, check_bf16, decode_in_bf16
from worldmodels.envs.prompts import PromptLike, frame_to_uint8, prompt_to_video
from worldmodels.envs.world_model_env import TERMINATION_THRESHOLD, load_world_model
from worldmodels.rollout import Rollout
from worldmodels.world_model import WorldModel

__all__ = ["WorldModelVectorEnv"]


class WorldModelVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of one learned world, stepped in batched calls.

    Args:
        model: a :class:`~worldmodels.WorldModel` or a preset name (random weights).
        num_envs: ``B``, the number of worlds.
        checkpoint: a checkpoint directory (instead of ``model``).
        prompt: the default prompt of every world (see :func:`~worldmodels.envs.prompt_to_video`);
            ``None``: one black frame. ``reset(options={"prompts": [...]})`` gives one per world.
        max_episode_steps: truncate a world's episode after this many steps (``None``: never).
        use_cache: let the dynamics use its key/value cache across sampler iterations.
        bf16: ``True``: bfloat16 autocast; ``"auto"``: bf16 only for the dynamics' linear layers
            whose shape runs faster in bf16 here; ``False``: fp32 (see :class:`~worldmodels.envs.WorldModelEnv`).
        context_frames: past frames the dynamics conditions on (default: the model's window).
        sampler_steps: override the sampler's steps per frame.
        device: where to run (default: where the model's parameters are).

    Shapes:
        observations ``B H W 3`` uint8; actions ``B`` ints in ``[0, A)``; rewards ``B`` float32;
        terminations / truncations ``B`` bool.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        model: WorldModel | str | None = None,
        num_envs: int = 1,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        prompt: PromptLike = None,
        max_episode_steps: int | None = None,
        use_cache: bool = True,
        bf16: bool | str = False,
        context_frames: int | None = None,
        sampler_steps: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if (model is None) == (checkpoint is None):
            raise ValueError("WorldModelVectorEnv needs exactly one of model= and checkpoint=.")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}.")
        source = model if model is not None else checkpoint
        self.model: WorldModel = load_world_model(source, device=device, sampler_steps=sampler_steps)  # type: ignore[arg-type]
        if self.model.in_channels not in (1, 3):
            raise ValueError(f"WorldModelVectorEnv shows 1- or 3-channel frames; this model has {self.model.in_channels}.")
        self.device = self.model.device
        self.num_envs = int(num_envs)
        self.max_episode_steps = max_episode_steps
        self.use_cache, self.bf16 = bool(use_cache), check_bf16(bf16)
        self._bf16_linears = bf16_linears(self.model, batch=self.num_envs) if self.bf16 == "auto" else None
        self._decode_bf16 = decode_in_bf16(self.model, self.bf16, batch=self.num_envs)
        full_context = self.model.context_window
        if context_frames is not None and not 1 <= context_frames <= full_context:
            raise ValueError(f"context_frames must lie in 1..{full_context} (the model's num_frames - 1), "
                             f"got {context_frames}.")
        self.context_frames = int(context_frames or full_context)
        self.default_prompt: Tensor = self._prompt(prompt)
        height, width = self.model.image_size
        self.single_observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.single_action_space = spaces.Discrete(self.model.num_actions)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._cohorts: list[_Cohort] = []
        self._prompts: list[Tensor] = [self.default_prompt] * self.num_envs
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._generator: torch.Generator | None = None

    @property
    def num_actions(self) -> int:
        """The number of latent actions ``A``."""
        return self.model.num_actions

    def context_tokens(self, index: int) -> Tensor:
        """The kept token context ``1 T h w`` of world ``index`` (newest last)."""
        for cohort in self._cohorts:
            if index in cohort.worlds:
                row = cohort.worlds.index(index)
                return cohort.rollout.tokens[row : row + 1]
        raise RuntimeError("Call reset() before reading a world's context.")

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start every world from its prompt.

        Args:
            seed: seeds the sampler's torch generator (shared by the worlds, drawn in batch order).
            options: ``{"prompt": P}`` (every world) or ``{"prompts": [P_0, ..., P_{B-1}]}``.

        Returns:
            ``(observations B H W 3, info)``; ``info["prompt_frames"]`` per world.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"prompt", "prompts"})
        if unknown:
            raise ValueError(f"Unknown reset option(s) {unknown}; use {{'prompt': P}} or {{'prompts': [...]}}.")
        if "prompts" in options:
            prompts = list(options["prompts"])
            if len(prompts) != self.num_envs:
                raise ValueError(f"options['prompts'] needs one prompt per world ({self.num_envs}), got {len(prompts)}.")
            self._prompts = [self._prompt(p) for p in prompts]
        elif "prompt" in options:
            self._prompts = [self._prompt(options["prompt"])] * self.num_envs
        torch_seed = int(self.np_random.integers(0, 2**62))
        self._generator = torch.Generator(device=self.device).manual_seed(torch_seed)
        everyone = list(range(self.num_envs))
        with self._inference():
            self._cohorts = []
            self._start(everyone)
            frames = self._decode()
        self._steps[:] = 0
        self._needs_reset[:] = False
        info = {"prompt_frames": np.array([p.shape[0] for p in self._prompts], dtype=np.int64)}
        return frames, info

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every world by one frame under its latent action (finished worlds restart instead).

        Returns:
            ``(observations, rewards, terminations, truncations, info)``; ``info`` holds
            ``frame_index`` and, with predicted outcomes, ``termination_probability`` (``B``).

        Raises:
            RuntimeError: before ``reset``.
            ValueError: for actions of the wrong shape or outside ``[0, A)``.
        """
        if self._generator is None:
            raise RuntimeError("Call WorldModelVectorEnv.reset() before step().")
        actions_B = self._check_actions(actions)
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        probability = np.zeros(self.num_envs, dtype=np.float32)
        restart = [i for i in range(self.num_envs) if self._needs_reset[i]]
        playing = [i for i in range(self.num_envs) if not self._needs_reset[i]]
        predicts = self.model.dynamics.predicts_outcomes
        with self._inference():
            self._leave(restart)
            for cohort in self._cohorts:
                group = cohort.worlds
                step_action = torch.as_tensor(actions_B[group], device=self.device)
                out = cohort.rollout.step(step_action, generator=self._generator)
                if out.reward is not None and out.terminated is not None:
                    rewards[group] = out.reward.float().cpu().numpy()
                    probability[group] = out.terminated.float().cpu().numpy()
                    terminated[group] = probability[group] > TERMINATION_THRESHOLD
            self._start(restart)  # after the others stepped: restarted worlds show their first frame
            frames = self._decode()
        self._steps[playing] += 1
        self._steps[restart] = 0
        if self.max_episode_steps is not None:
            truncated[playing] = self._steps[playing] >= self.max_episode_steps
        truncated &= ~terminated
        self._needs_reset[:] = terminated | truncated
        info: dict[str, Any] = {"frame_index": self._steps.copy()}
        if predicts:
            info["termination_probability"] = probability
        return frames, rewards, terminated, truncated, info

    # ------------------------------------------------------------------ helpers
    def _prompt(self, prompt: PromptLike) -> Tensor:
        return prompt_to_video(prompt, self.model.image_size, self.model.in_channels, self.model.num_frames)

    def _leave(self, indices: Sequence[int]) -> None:
        """Take the worlds ``indices`` out of their cohorts (the rest of each cohort goes on)."""
        leaving = set(indices)
        kept: list[_Cohort] = []
        for cohort in self._cohorts:
            rows = [k for k, i in enumerate(cohort.worlds) if i not in leaving]
            if len(rows) == len(cohort.worlds):
                kept.append(cohort)
            elif rows:
                kept.append(_Cohort(cohort.rollout.select(rows), [cohort.worlds[k] for k in rows]))
        self._cohorts = kept

    def _start(self, indices: Sequence[int]) -> None:
        """(Re)start the worlds ``indices`` from their prompts as new cohorts, then merge equal cohorts.

        Prompts of one length are encoded together and become one cohort.
        """
        self._leave(indices)
        kept = self._cohorts
        for group in _group_by(indices, lambda i: int(self._prompts[i].shape[0])):
            length = int(self._prompts[group[0]].shape[0])
            video = torch.stack([self._prompts[i] for i in group]).to(self.device)
            tokens = self.model.encode(video)
            actions = self.model.infer_actions(video).long() if length > 1 else None
            rollout = Rollout(self.model, tokens, actions, keep=self.model.num_frames, use_cache=self.use_cache,
                              frames=self.context_frames)
            kept.append(_Cohort(rollout, list(group)))
        self._cohorts = kept
        self._merge()

    def _merge(self) -> None:
        """Stack the cohorts that have reached the same point (one batched call each from now on)."""
        by_key: dict[tuple[int, int, int | None], list[_Cohort]] = {}
        for cohort in self._cohorts:
            by_key.setdefault(cohort.rollout.join_key(), []).append(cohort)
        merged = []
        for group in by_key.values():
            if len(group) == 1:
                merged.append(group[0])
            else:
                merged.append(_Cohort(Rollout.cat([c.rollout for c in group]), [i for c in group for i in c.worlds]))
        self._cohorts = merged

    def _decode(self) -> np.ndarray:
        """The newest frame of every world, decoded one batch per cohort: ``B H W 3`` uint8."""
        height, width = self.model.image_size
        out = np.zeros((self.num_envs, height, width, 3), dtype=np.uint8)
        for cohort in self._cohorts:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._decode_bf16):
                frames = cohort.rollout.decode_newest().float()
            for k, i in enumerate(cohort.worlds):
                out[i] = frame_to_uint8(frames[k])
        return out

    def _check_actions(self, actions: Any) -> np.ndarray:
        array = np.asarray(actions)
        if array.shape != (self.num_envs,) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"actions must be {self.num_envs} integers (one latent action per world), got "
                             f"{array.dtype} of shape {array.shape}.")
        if array.size and (array.min() < 0 or array.max() >= self.num_actions):
            raise ValueError(f"Latent actions must lie in 0..{self.num_actions - 1}; got {array.tolist()}.")
        return array.astype(np.int64)

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16 is True):
            with self._bf16_linears or contextlib.nullcontext():
                yield


@dataclass
class _Cohort:
    """Worlds advanced as one batch: their rollout, row ``k`` being world ``worlds[k]``."""

    rollout: Rollout
    worlds: list[int]


def _group_by(indices: Sequence[int], key: Callable[[int], int]) -> list[list[int]]:
    """``indices`` grouped by ``key`` (first-seen order), so each group runs as one batch."""
    groups: dict[int, list[int]] = {}
    for i in indices:
        groups.setdefault(key(i), []).append(i)
    return list(groups.values())
