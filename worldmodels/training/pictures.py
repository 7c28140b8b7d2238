"""The pictures a stage logs while it trains: reconstructions, and generations from the first frame.

Axis legend: ``B`` clips, ``T`` frames, ``C H W`` pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from worldmodels.training.loggers import video_grid
from worldmodels.world_model import WorldModel

__all__ = ["stage_pictures"]


@torch.no_grad()
def stage_pictures(
    model: WorldModel, kinds: Sequence[str], batch: Mapping[str, Any], device: torch.device, seed: int
) -> dict[str, Tensor]:
    """The image grids a stage logs for a fixed batch (tag -> ``3 H W`` grid), drawn in eval mode.

    ``kinds`` are the stage's :attr:`~worldmodels.training.stages.TrainingStage.pictures`:
    ``"reconstruction"`` shows ``images/reconstruction`` (real over reconstructed clips);
    ``"generated"`` shows ``images/generated``: each clip generated
    from its first frame with the actions the model infers (or the recorded ones, for a model
    conditioned on them), under a generator seeded with ``seed``. The components' train/eval
    modes are restored afterwards.

    Shapes:
        ``batch["video"]`` ``B T C H W`` (``batch["actions"]`` ``B T-1``) -> grids ``3 H' W'``.
    """
    was_training = {name: getattr(model, name).training for name in ("tokenizer", "action_model", "dynamics")}
    model.eval()
    pictures: dict[str, Tensor] = {}
    try:
        video = batch["video"].to(device)
        recorded = batch.get("actions")
        if isinstance(recorded, Tensor) and getattr(model.action_model, "uses_recorded_actions", False):
            recorded = recorded.to(device).clamp_min(0)  # an unknown action shown as action 0
        else:
            recorded = None
        if "reconstruction" in kinds:
            pictures["images/reconstruction"] = video_grid([video, model.tokenizer.reconstruct(video)])
        if "generated" in kinds and video.shape[1] > 1:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
            actions = model.infer_actions(video, recorded)
            generated = model.generate(video[:, 0], actions, generator=generator)
            pictures["images/generated"] = video_grid([video, generated])
    finally:
        for name, mode in was_training.items():
            getattr(model, name).train(mode)
    return pictures
