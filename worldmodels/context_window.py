"""The frames a world model conditions on: one rule for ``generate``, ``play`` and the env.

A :class:`ContextWindow` keeps the token frames of a rollout and the action of every transition
between them, newest last. The dynamics sees the last ``frames`` of them (at most the model's
:attr:`~worldmodels.WorldModel.context_window`, ``num_frames - 1``: the training clips' context
before their last frame) plus the action that leads into the new frame; the window keeps at most
``keep`` frames (``None``: all of them, for a rollout decoded at the end) and slides once full.

Axis legend: ``B`` batch, ``T`` kept frames, ``K`` frames the dynamics sees, ``h w`` token grid
(``h w D`` for continuous latents).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ContextWindow", "last_frames"]


def last_frames(tokens_BThw: Tensor, actions_BT: Tensor, frames: int) -> tuple[Tensor, Tensor]:
    """The last ``frames`` token frames and the actions out of them (``B T ...``, ``B T`` -> ``B K ...``, ``B K``)."""
    if frames < 1:
        raise ValueError(f"A context window holds at least one frame, got frames={frames}.")
    return tokens_BThw[:, -frames:], actions_BT[:, -frames:]


class ContextWindow:
    """Token frames and the actions between them, newest last, sliding once ``keep`` frames are held.

    Args:
        tokens: the prompt's tokens ``B T h w`` (or ``B T h w D``), at least one frame.
        actions: the ``B T-1`` actions between the prompt frames (default: none, for one frame).
        frames: how many frames the dynamics sees (``1 <= frames``).
        keep: the most frames kept (``None``: all); must be at least ``frames``.

    Raises:
        ValueError: for mismatched tokens and actions, or ``keep < frames``.

    Shapes:
        :attr:`tokens` ``B T h w``, :attr:`actions` ``B T-1``; :meth:`step_inputs` -> ``B K h w``, ``B K``.
    """

    def __init__(self, tokens: Tensor, actions: Tensor | None = None, *, frames: int, keep: int | None = None) -> None:
        if tokens.ndim < 3 or tokens.shape[1] < 1:
            raise ValueError(f"tokens must be B T h w with T >= 1, got shape {tuple(tokens.shape)}.")
        b, t = tokens.shape[:2]
        if actions is None:
            if t != 1:
                raise ValueError(f"A {t}-frame context needs its {t - 1} actions (B T-1); got none.")
            actions = torch.zeros((b, 0), dtype=torch.long, device=tokens.device)
        if tuple(actions.shape) != (b, t - 1):
            raise ValueError(f"actions must be B T-1 = ({b}, {t - 1}) for tokens {tuple(tokens.shape)}, "
                             f"got {tuple(actions.shape)}.")
        if frames < 1 or (keep is not None and keep < frames):
            raise ValueError(f"Need 1 <= frames <= keep, got frames={frames}, keep={keep}.")
        self.frames, self.keep = int(frames), keep
        self._tokens, self._actions = tokens, actions.long()
        self._slide()

    @property
    def tokens(self) -> Tensor:
        """The kept token frames ``B T h w``, newest last."""
        return self._tokens

    @property
    def actions(self) -> Tensor:
        """The ``B T-1`` actions between the kept frames."""
        return self._actions

    def __len__(self) -> int:
        return int(self._tokens.shape[1])

    def step_inputs(self, action: Tensor) -> tuple[Tensor, Tensor]:
        """What the dynamics reads to predict the next frame under ``action`` (``B``).

        Returns:
            The last ``frames`` token frames ``B K h w`` and their actions ``B K``, the last of
            which is ``action`` (it leads out of the newest frame into the predicted one).
        """
        step = action.reshape(-1, 1).to(self._actions.device).long()
        return last_frames(self._tokens, torch.cat([self._actions, step], dim=1), self.frames)

    def push(self, frame_tokens: Tensor, action: Tensor) -> None:
        """Append the predicted frame ``B h w`` reached under ``action`` (``B``); slide to ``keep`` frames."""
        self._tokens = torch.cat([self._tokens, frame_tokens[:, None].to(self._tokens.dtype)], dim=1)
        self._actions = torch.cat([self._actions, action.reshape(-1, 1).to(self._actions.device).long()], dim=1)
        self._slide()

    def select(self, rows: Tensor) -> ContextWindow:
        """The batch elements ``rows`` (``K`` indices) only: a new window of ``K`` rollouts."""
        out = ContextWindow.__new__(ContextWindow)
        out.frames, out.keep = self.frames, self.keep
        out._tokens, out._actions = self._tokens.index_select(0, rows), self._actions.index_select(0, rows)
        return out

    @staticmethod
    def cat(windows: list[ContextWindow]) -> ContextWindow:
        """Windows of equal length and settings stacked along the batch."""
        first = windows[0]
        if any((len(w), w.frames, w.keep) != (len(first), first.frames, first.keep) for w in windows):
            raise ValueError("Only context windows of one length and one setting can be stacked; got "
                             f"{[(len(w), w.frames, w.keep) for w in windows]} (length, frames, keep).")
        out = ContextWindow.__new__(ContextWindow)
        out.frames, out.keep = first.frames, first.keep
        out._tokens = torch.cat([w.tokens for w in windows])
        out._actions = torch.cat([w.actions for w in windows])
        return out

    def _slide(self) -> None:
        if self.keep is not None and self._tokens.shape[1] > self.keep:
            self._tokens = self._tokens[:, -self.keep :]
            self._actions = self._actions[:, self._actions.shape[1] - (self.keep - 1) :]
