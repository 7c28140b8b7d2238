"""A rollout of a world model in token space: one code path for ``generate``, ``play`` and the envs.

Axis legend: ``B`` rollouts advanced together, ``T`` kept frames, ``h w`` token grid.

A :class:`Rollout` holds the frames and latent actions so far (a
:class:`~worldmodels.context_window.ContextWindow`) and, when the dynamics can append frames to
what it computed (:meth:`~worldmodels.Dynamics.open_stream`, e.g. ``maskgit`` with rotary
temporal positions), the dynamics' stream: then a step computes only the new frame, whatever the
number of frames played. Otherwise each step predicts from the last
:meth:`~worldmodels.Dynamics.history_frames` frames afresh. Both paths give the same tokens.

Example:
    >>> import torch, worldmodels
    >>> model = worldmodels.build("genie-tiny").eval()
    >>> rollout = model.rollout(model.encode(torch.rand(1, 1, 3, 64, 64)))
    >>> step = rollout.step(torch.tensor([3]))       # the next frame's tokens B h w
    >>> tuple(rollout.tokens.shape)
    (1, 2, 16, 16)
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from worldmodels.context_window import ContextWindow
from worldmodels.interfaces import DynamicsStream, StepOutput, check_actions

if TYPE_CHECKING:
    from worldmodels.world_model import WorldModel

__all__ = ["Rollout"]


def sampler_takes_cache(sampler: object) -> bool:
    """Whether ``sampler.sample`` accepts a prepared ``cache=`` (older plug-in samplers do not)."""
    try:
        return "cache" in inspect.signature(sampler.sample).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False


class Rollout:
    """Frames, actions and the dynamics' running state of ``B`` rollouts of one world model.

    Args:
        model: the world model.
        tokens: the first frames' tokens ``B T h w`` (``T >= 1``).
        actions: ``B T-1`` latent actions between them (``None`` for one frame).
        keep: the most frames kept for reading back (``None``: all of them); at least what the
            dynamics needs (:meth:`~worldmodels.Dynamics.history_frames`) is always kept.
        use_cache: use the dynamics' stream or key/value cache (``False``: the plain path that
            reruns the context at every sampler pass; same tokens, slower).
        frames: past frames a prediction sees (default: the model's context window).

    Shapes:
        :attr:`tokens` ``B T h w``; :meth:`step` takes ``B`` actions and returns ``B h w``.
    """

    def __init__(
        self,
        model: WorldModel,
        tokens: Tensor,
        actions: Tensor | None = None,
        *,
        keep: int | None = None,
        use_cache: bool = True,
        frames: int | None = None,
    ) -> None:
        self.model, self.use_cache = model, bool(use_cache)
        self.frames = int(frames or model.context_window)
        if not 1 <= self.frames <= model.context_window:
            raise ValueError(f"frames must lie in 1..{model.context_window} (the model's context window), "
                             f"got {frames}.")
        self.history = model.dynamics.history_frames(self.frames)
        self.window = ContextWindow(tokens, actions, frames=self.history,
                                    keep=None if keep is None else max(keep, self.history))
        self.stream: DynamicsStream | None = None
        if self.use_cache and sampler_takes_cache(model.sampler):
            embeddings = model.action_model.embed(self.window.actions.long())
            self.stream = model.dynamics.open_stream(self.window.tokens, embeddings, self.frames)

    @property
    def tokens(self) -> Tensor:
        """The kept frames' tokens ``B T h w``, newest last."""
        return self.window.tokens

    @property
    def actions(self) -> Tensor:
        """The ``B T-1`` latent actions between the kept frames."""
        return self.window.actions

    @property
    def batch(self) -> int:
        """``B``, the rollouts advanced together."""
        return int(self.window.tokens.shape[0])

    def __len__(self) -> int:
        return len(self.window)

    @torch.no_grad()
    def step(self, action: Tensor, generator: torch.Generator | None = None) -> StepOutput:
        """Predict and append the next frame of every rollout under ``action`` (``B`` latent actions).

        Returns:
            :class:`~worldmodels.interfaces.StepOutput` with the new frame's ``tokens`` ``B h w``,
            the predicted ``reward`` and ``terminated`` where the dynamics predicts them, and
            ``frame`` left empty (decode with :meth:`decode_newest`).
        """
        model = self.model
        action = action.reshape(-1).to(self.window.actions.device).long()
        check_actions(action, model.num_actions, "action")
        tokens, actions = self.window.step_inputs(action)
        if self.stream is not None:
            embeddings = model.action_model.embed(actions)
            cache = self.stream.prepare(embeddings[:, -1])
            nxt = model.sampler.sample(model.dynamics, tokens, embeddings, generator=generator, cache=cache)
            self.stream.push(nxt)
        else:
            nxt = model.predict_next_tokens(tokens, actions, generator=generator, use_cache=self.use_cache)
        reward, terminated = model.predict_outcome(tokens, actions)  # after sampling: IRIS reuses its pass
        self.window.push(nxt, action)
        return StepOutput(frame=nxt.new_empty(0), tokens=nxt, reward=reward, terminated=terminated)

    def decode_newest(self, frames: int | None = None) -> Tensor:
        """The newest frame ``B C H W``, decoded from the last ``frames`` kept frames (default: ``num_frames``)."""
        window = int(frames or self.model.num_frames)
        return self.model.tokenizer.decode_last(self.window.tokens[:, -window:])

    def select(self, rows: list[int]) -> Rollout:
        """The rollouts ``rows`` only, as a new :class:`Rollout` (the stream's buffers are copied)."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.window.tokens.device)
        stream = self.stream.select(list(rows)) if self.stream is not None else None
        return self._with(self.window.select(index), stream)

    def _with(self, window: ContextWindow, stream: DynamicsStream | None) -> Rollout:
        out = object.__new__(Rollout)
        out.model, out.use_cache, out.frames, out.history = self.model, self.use_cache, self.frames, self.history
        out.window, out.stream = window, stream
        return out

    def join_key(self) -> tuple[int, int, int | None]:
        """Rollouts with equal keys can be stacked by :meth:`cat` (same kept length, same stream position)."""
        return len(self), int(self.window.actions.shape[1]), None if self.stream is None else self.stream.frames

    @staticmethod
    def cat(rollouts: list[Rollout]) -> Rollout:
        """Rollouts with the same :meth:`join_key` stacked along the batch."""
        first = rollouts[0]
        if any(r.join_key() != first.join_key() or r.model is not first.model for r in rollouts):
            raise ValueError("Only rollouts of one model at the same point can be stacked; got keys "
                             f"{[r.join_key() for r in rollouts]}.")
        stream = None
        if first.stream is not None:
            stream = type(first.stream).cat([r.stream for r in rollouts if r.stream is not None])
        return first._with(ContextWindow.cat([r.window for r in rollouts]), stream)
