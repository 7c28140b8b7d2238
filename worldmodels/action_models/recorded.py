"""``recorded``: the actions a data set recorded, instead of latent actions inferred from the frames.

Axis legend: ``B`` batch, ``T`` frames, ``A`` number of actions.

A world model built with it (``build("genie-tiny", action_model={"name": "recorded",
"num_actions": 15})``) is conditioned on the environment's true actions: the paper's
ground-truth-action upper bound (GenieRedux-G), against which the latent action model is
measured. The action embedding is one-hot, so the dynamics' own input projection learns the
vector of each action; an unknown action (``-1``) embeds as zeros.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodels.interfaces import ActionModel, LossOutput, check_video
from worldmodels.registry import register


@register("action_model", "recorded")
class RecordedActionModel(ActionModel):
    """The recorded actions of the data set, one-hot embedded; nothing to train.

    Shapes: ``infer(video: B T C H W, actions: B T-1) -> B T-1``; ``embed(actions: B T-1) -> B T-1 A``.

    Args:
        num_actions: ``A``, the environment's number of discrete actions (CoinRun through
            Procgen: 15; the data set's manifest says it, ``ClipDataset.num_actions``).
        image_size: accepted for symmetry with other action models (unused).
        in_channels: accepted for symmetry (unused).
        num_frames: accepted for symmetry (unused).
    """

    uses_recorded_actions: ClassVar[bool] = True
    training_stages: ClassVar[tuple[str, ...]] = ()  # nothing to learn alone: its embedding trains with the dynamics
    conformance_config: ClassVar[dict[str, Any]] = {"num_actions": 5}
    """Settings for :mod:`worldmodels.testing`'s conformance checks."""

    def __init__(
        self,
        num_actions: int = 15,
        image_size: int | list[int] = 64,
        in_channels: int = 3,
        num_frames: int = 16,
    ) -> None:
        super().__init__()
        if num_actions < 1:
            raise ValueError(f"num_actions must be >= 1 (the environment's action count), got {num_actions}.")
        self.num_actions = self.action_dim = int(num_actions)

    def _recorded(self, video: Tensor, actions: Tensor | None) -> Tensor:
        check_video(video, min_frames=2)
        b, t = video.shape[:2]
        if actions is None:
            raise ValueError(
                "The 'recorded' action model reads the actions from the data set, but none were given: pass "
                "actions (B T-1 int64, -1 where unknown), e.g. model.infer_actions(video, actions=batch['actions']). "
                "Record data with true actions (worldmodels record coinrun), or use a latent action model."
            )
        if tuple(actions.shape) != (b, t - 1) or actions.is_floating_point():
            raise ValueError(
                f"Expected recorded actions of shape B T-1 = ({b}, {t - 1}) with integer dtype, got "
                f"{tuple(actions.shape)} {actions.dtype}."
            )
        if actions.numel() and int(actions.max()) >= self.num_actions:
            raise ValueError(
                f"Recorded actions reach {int(actions.max())}, but this model was built with num_actions="
                f"{self.num_actions}; build it with the data set's action count."
            )
        return actions.long().to(video.device)

    def infer(self, video: Tensor, actions: Tensor | None = None) -> Tensor:
        """The recorded actions (``-1`` where unknown), checked against the clip.

        Shapes: ``video: B T C H W``, ``actions: B T-1 -> B T-1`` int64.
        """
        return self._recorded(video, actions)

    def embed(self, actions: Tensor) -> Tensor:
        """One-hot vectors of the actions; zeros for unknown ones (``-1``).

        Shapes: ``B T-1 -> B T-1 A``.
        """
        if actions.is_floating_point():
            raise ValueError(f"embed expects integer action indices, got dtype {actions.dtype}.")
        actions = actions.long()
        known = (actions >= 0)[..., None]
        return F.one_hot(actions.clamp_min(0), self.num_actions).float() * known

    def loss(self, video: Tensor, actions: Tensor | None = None) -> LossOutput:
        """Zero (nothing to learn); checks that the recorded actions are there.

        Returns:
            ``(0, {"known_actions": fraction of transitions whose action is known})``.
        """
        recorded = self._recorded(video, actions)
        zero = torch.zeros((), device=video.device)
        return zero, {"loss": zero, "known_actions": (recorded >= 0).float().mean()}
