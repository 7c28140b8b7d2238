"""Play a learned world without a screen: a fixed sequence of latent actions, written to GIF or MP4.

Axis legend: ``H W`` pixels.

This is the server and test counterpart of :mod:`worldmodels.play.window`
(``worldmodels play CKPT --prompt level.png --actions 3,3,1 --out run.gif``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.envs.prompts import PromptLike
from worldmodels.envs.world_model_env import WorldModelEnv
from worldmodels.play.export import output_format, save_rollout

__all__ = ["parse_actions", "play_headless", "rollout"]


def parse_actions(text: str, num_actions: int | None = None) -> list[int]:
    """Parse ``"3,3,1"`` (commas and/or spaces) into latent action indices.

    Args:
        text: the indices, ``0 .. A-1``.
        num_actions: ``A``, to check the range (``None``: unchecked).

    Returns:
        The indices.

    Raises:
        ValueError: for an empty list, a non-integer or an index outside ``0 .. A-1``.

    Shapes:
        not applicable.
    """
    items = [item for item in text.replace(",", " ").split() if item]
    if not items:
        raise ValueError("No latent actions given: pass comma-separated indices such as --actions 3,3,1.")
    actions = []
    for item in items:
        try:
            actions.append(int(item))
        except ValueError:
            raise ValueError(f"{item!r} in --actions is not an integer; pass indices such as 3,3,1.") from None
    if num_actions is not None:
        bad = [a for a in actions if not 0 <= a < num_actions]
        if bad:
            raise ValueError(
                f"Latent action(s) {bad} out of range: this world model has {num_actions} latent actions, "
                f"numbered 0..{num_actions - 1}."
            )
    return actions


def rollout(
    env: WorldModelEnv,
    actions: Sequence[int],
    *,
    seed: int | None = None,
    prompt: PromptLike = None,
) -> list[np.ndarray]:
    """Reset ``env`` and play ``actions``; returns every frame, the prompt's first.

    Args:
        env: the environment.
        actions: latent action indices, one per generated frame.
        seed: reset seed.
        prompt: the prompt (``None``: the env's default prompt).

    Returns:
        ``len(actions) + 1`` frames ``H W 3`` uint8.

    Shapes:
        frames ``H W 3``.
    """
    options: dict[str, Any] | None = None if prompt is None else {"prompt": prompt}
    frame, _ = env.reset(seed=seed, options=options)
    frames = [frame]
    for action in actions:
        frame, *_ = env.step(int(action))
        frames.append(frame)
    return frames


def play_headless(
    env: WorldModelEnv,
    actions: Sequence[int],
    out: str | os.PathLike[str],
    *,
    seed: int | None = None,
    prompt: PromptLike = None,
    fps: float = 15.0,
    scale: int = 1,
) -> Path:
    """Play ``actions`` from the prompt and write the frames to ``out`` (``.gif`` or ``.mp4``).

    Args:
        env: the environment.
        actions: latent action indices.
        out: destination file; its suffix picks the format.
        seed: reset seed.
        prompt: the prompt (``None``: the env's default prompt).
        fps: frames per second of the file.
        scale: integer upscaling of the written frames.

    Returns:
        The path written.

    Raises:
        ValueError: for an unsupported file suffix (before anything is played).

    Shapes:
        not applicable.
    """
    output_format(out)  # a bad suffix fails before the rollout, not after it
    frames = rollout(env, actions, seed=seed, prompt=prompt)
    return save_rollout(frames, out, fps=fps, scale=scale)
