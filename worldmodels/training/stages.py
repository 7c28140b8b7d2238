"""Training stages: which components learn, which loss they minimise, where frozen parts come from.

* ``tokenizer`` trains ``tokenizer`` on ``WorldModel.tokenizer_loss(video)``;
* ``lam`` trains ``action_model`` on ``WorldModel.action_model_loss(video)``;
* ``dynamics`` trains ``dynamics`` and ``action_model`` on
  ``WorldModel.dynamics_loss(video, train_action_model=True)``; with ``freeze_action_model`` it
  trains ``dynamics`` alone on the actions of the frozen action model (``train_action_model=False``).

Every other component is frozen: no gradients, not in the optimizer, in eval mode. The trainer
only ever calls these :class:`~worldmodels.WorldModel` losses, so any registered components train.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import Tensor, nn

from worldmodels.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    check_state_dict,
    file_sha256,
    load_tensors,
    read_json,
    resolve_model_dir,
)
from worldmodels.checkpoint import (
    FINAL_DIR as FINAL_DIR,  # re-exported: the trainer names RUN/<stage>/final with it
)
from worldmodels.interfaces import COMPONENT_KINDS, LossOutput
from worldmodels.world_model import WorldModel

CHECKPOINTS_DIR = "checkpoints"


def trained_components(stage: str, freeze_action_model: bool = False) -> tuple[str, ...]:
    """The :class:`~worldmodels.WorldModel` attributes a stage trains."""
    if stage == "tokenizer":
        return ("tokenizer",)
    if stage == "lam":
        return ("action_model",)
    if stage == "dynamics":
        return ("dynamics",) if freeze_action_model else ("dynamics", "action_model")
    raise ValueError(f"Unknown stage {stage!r}; the stages are tokenizer, lam, dynamics.")


class StageLoss(nn.Module):
    """The module the trainer wraps (DDP / FSDP / compile): ``forward(video)`` is a stage's loss.

    Args:
        model: the world model.
        stage: ``tokenizer``, ``lam`` or ``dynamics``.
        freeze_action_model: dynamics stage only: keep the action model frozen.

    Shapes:
        ``forward``: a batch dict with ``video`` ``B T C H W`` float in ``[0, 1]`` and, where
        known, ``actions`` / ``rewards`` / ``terminated`` ``B T-1`` and ``tokens`` ``B T h w``
        -> ``(loss, metrics)``.
    """

    def __init__(self, model: WorldModel, stage: str, freeze_action_model: bool = False) -> None:
        super().__init__()
        self.model = model
        self.stage = stage
        self.freeze_action_model = freeze_action_model
        self.trained = trained_components(stage, freeze_action_model)
        self.frozen = tuple(k for k in COMPONENT_KINDS if k not in self.trained)

    def train(self, mode: bool = True) -> StageLoss:
        """Set the trained components' mode; frozen components always stay in eval mode."""
        super().train(mode)
        for name in self.frozen:
            getattr(self.model, name).eval()
        return self

    def forward(self, batch: Mapping[str, Tensor]) -> LossOutput:
        """The stage's loss and metrics on a batch of clips.

        ``batch`` holds ``video`` and, where the data has them, the recorded ``actions``,
        ``rewards`` and ``terminated`` (``B T-1``), and the clips' ``tokens`` when a token cache
        serves them (dynamics stage).
        """
        video = batch["video"]
        if self.stage == "tokenizer":
            return self.model.tokenizer_loss(video)
        if self.stage == "lam":
            return self.model.action_model_loss(video, batch.get("actions"))
        return self.model.dynamics_loss(
            video, train_action_model=not self.freeze_action_model, actions=batch.get("actions"),
            tokens=batch.get("tokens"), rewards=batch.get("rewards"), terminated=batch.get("terminated"),
        )  # fmt: skip


def set_trainable(model: WorldModel, components: Sequence[str]) -> dict[str, bool]:
    """Give gradients to the parameters of ``components`` only; returns the previous flags by name.

    Parameters a component keeps without gradients on purpose (e.g. EMA codebooks) stay so.
    """
    previous = {name: p.requires_grad for name, p in model.named_parameters()}
    for name, param in model.named_parameters():
        param.requires_grad_(name.split(".", 1)[0] in components and previous[name])
    return previous


def restore_trainable(model: WorldModel, previous: dict[str, bool]) -> None:
    """Undo :func:`set_trainable`."""
    for name, param in model.named_parameters():
        if name in previous:
            param.requires_grad_(previous[name])


model_weights_dir = resolve_model_dir
"""The ``save_pretrained`` directory a path names (:func:`worldmodels.checkpoint.resolve_model_dir`)."""


def load_weights(model: WorldModel, path: str | os.PathLike[str], components: Sequence[str] | None = None) -> Path:
    """Load the weights saved at ``path`` into ``model`` (all of them, or only ``components``).

    The file's checksum is verified and the shapes checked, so a checkpoint of another
    architecture fails with a message naming the mismatch.

    Returns:
        The ``save_pretrained`` directory the weights came from.

    Raises:
        CheckpointError: for a missing, corrupt or mismatched checkpoint.
    """
    directory = model_weights_dir(path)
    saved = read_json(directory / CONFIG_FILE)
    weights_path = directory / WEIGHTS_FILE
    expected = saved.get("meta", {}).get("weights_sha256") if isinstance(saved, dict) else None
    if expected and weights_path.is_file() and file_sha256(weights_path) != expected:
        raise CheckpointError(
            f"{weights_path} does not match the checksum recorded in {CONFIG_FILE}: it is truncated or was altered."
        )
    weights = load_tensors(weights_path)
    if components is None:
        check_state_dict(model, weights, str(weights_path), model.name)
        model.load_state_dict(weights)
        return directory
    for name in components:
        module: nn.Module = getattr(model, name)
        prefix = f"{name}."
        part = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
        check_state_dict(module, part, f"{weights_path} ({name})", model.name)
        module.load_state_dict(part)
    return directory
