"""Training stages: which components learn, on which loss, and which parts earlier stages trained.

A :class:`TrainingStage` names the components it trains, the :class:`~worldmodels.WorldModel`
loss it minimises and the components it takes from the ``final`` directories of earlier stages
of the same run. The built-in stages (:data:`BUILTIN_STAGES`, the paper's order):

* ``tokenizer`` trains ``tokenizer`` on ``WorldModel.tokenizer_loss(video)``;
* ``lam`` trains ``action_model`` on ``WorldModel.action_model_loss(video)`` (the tokenizer of
  ``RUN/tokenizer/final`` is loaded when there);
* ``dynamics`` trains ``dynamics`` and ``action_model`` on
  ``WorldModel.dynamics_loss(video, train_action_model=True)``, on the tokenizer of
  ``RUN/tokenizer/final`` (required) and the action model of ``RUN/lam/final`` when there; with
  ``train.freeze_action_model`` it trains ``dynamics`` alone on the actions of the frozen action
  model (then required).

A *model declares its stages*: each component class lists the stages that train it
(:attr:`worldmodels.interfaces.Component.training_stages`; a recorded-action model, which learns
nothing on its own, lists none), and :meth:`worldmodels.WorldModel.training_stages` collects them;
``stage=all`` runs those that :attr:`TrainingStage.in_all` marks (tokenizer, then dynamics), or
the stages ``train.all_stages`` lists (:func:`stages_to_run`).
A plug-in adds a stage with :func:`register_stage`. Every other component is frozen: no
gradients, not in the optimizer, in eval mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from worldmodels.build_config import ConfigError
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

StageLossFn = Callable[[WorldModel, Mapping[str, Tensor], bool], LossOutput]
"""``loss(model, batch, freeze_action_model) -> (loss, metrics)``."""


@dataclass(frozen=True)
class TrainingStage:
    """One stage of training a world model.

    Attributes:
        name: the stage's name: ``train.stage=NAME`` and the run directory ``RUN/NAME``.
        trains: the :class:`~worldmodels.WorldModel` components it trains.
        loss: ``loss(model, batch, freeze_action_model) -> (loss, metrics)``; ``batch`` holds
            ``video`` and, where known, ``actions``, ``rewards``, ``terminated`` and ``tokens``.
        loads: ``(component, stage)`` pairs: the component is loaded from ``RUN/<stage>/final``
            when that exists.
        requires: pairs from ``loads`` that must exist (unless ``train.init_from`` is given).
        freezable: components of ``trains`` that ``train.freeze_action_model`` keeps frozen; they
            are then required from ``loads``.
        in_all: part of ``stage=all``.
        reads_tokens: the loss reads the clips' tokens (``train.cache_tokens`` can serve them).
        pictures: what the stage logs: ``"reconstruction"`` and / or ``"generated"``.
    """

    name: str
    trains: tuple[str, ...]
    loss: StageLossFn
    loads: tuple[tuple[str, str], ...] = ()
    requires: tuple[tuple[str, str], ...] = ()
    freezable: tuple[str, ...] = ()
    in_all: bool = False
    reads_tokens: bool = False
    pictures: tuple[str, ...] = ()

    def trained(self, freeze_action_model: bool = False) -> tuple[str, ...]:
        """The components this stage trains (``freezable`` ones dropped when frozen)."""
        return tuple(c for c in self.trains if not (freeze_action_model and c in self.freezable))

    def required(self, freeze_action_model: bool = False) -> tuple[tuple[str, str], ...]:
        """The ``(component, stage)`` pairs that must have been trained before this stage."""
        frozen = self.freezable if freeze_action_model else ()
        return tuple(pair for pair in self.loads if pair in self.requires or pair[0] in frozen)


def _tokenizer_loss(model: WorldModel, batch: Mapping[str, Tensor], freeze: bool) -> LossOutput:
    return model.tokenizer_loss(batch["video"])


def _action_model_loss(model: WorldModel, batch: Mapping[str, Tensor], freeze: bool) -> LossOutput:
    return model.action_model_loss(batch["video"], batch.get("actions"))


def _dynamics_loss(model: WorldModel, batch: Mapping[str, Tensor], freeze: bool) -> LossOutput:
    return model.dynamics_loss(
        batch["video"], train_action_model=not freeze, actions=batch.get("actions"), tokens=batch.get("tokens"),
        rewards=batch.get("rewards"), terminated=batch.get("terminated"),
    )  # fmt: skip


BUILTIN_STAGES: tuple[TrainingStage, ...] = (
    TrainingStage("tokenizer", ("tokenizer",), _tokenizer_loss, in_all=True, pictures=("reconstruction",)),
    TrainingStage("lam", ("action_model",), _action_model_loss, loads=(("tokenizer", "tokenizer"),)),
    TrainingStage(
        "dynamics", ("dynamics", "action_model"), _dynamics_loss,
        loads=(("tokenizer", "tokenizer"), ("action_model", "lam")), requires=(("tokenizer", "tokenizer"),),
        freezable=("action_model",), in_all=True, reads_tokens=True, pictures=("reconstruction", "generated"),
    ),  # fmt: skip
)
"""The paper's stages (see the module docs)."""

_STAGES: dict[str, TrainingStage] = {stage.name: stage for stage in BUILTIN_STAGES}


def register_stage(stage: TrainingStage, *, override: bool = False) -> TrainingStage:
    """Make a stage available to ``train.stage`` (a plug-in calls this from its ``register``).

    Raises:
        ValueError: when a different stage of that name exists and ``override`` is not set.
    """
    if not stage.name or stage.name == "all" or "/" in stage.name:
        raise ValueError(f"A stage needs a name other than 'all' and without '/', got {stage.name!r}.")
    unknown = [c for c in stage.trains if c not in COMPONENT_KINDS]
    if unknown:
        raise ValueError(f"Stage {stage.name!r} trains {unknown}, which are not components ({', '.join(COMPONENT_KINDS)}).")
    if stage.name in _STAGES and _STAGES[stage.name] != stage and not override:
        raise ValueError(f"A stage named {stage.name!r} exists already; pass override=True to replace it.")
    _STAGES[stage.name] = stage
    return stage


def stage_names() -> tuple[str, ...]:
    """The names of every registered stage, built-in ones first."""
    return tuple(_STAGES)


def get_stage(name: str) -> TrainingStage:
    """The registered stage ``name``.

    Raises:
        ConfigError: for an unknown name, listing the known ones.
    """
    if name not in _STAGES:
        raise ConfigError(f"Unknown stage {name!r}; the stages are {', '.join(_STAGES)} (and all).")
    return _STAGES[name]


def model_stages(model: WorldModel) -> tuple[str, ...]:
    """The stages a model declares (:meth:`~worldmodels.WorldModel.training_stages`) that are registered."""
    return tuple(name for name in model.training_stages() if name in _STAGES)


def check_model_stage(model: WorldModel, stage: str) -> TrainingStage:
    """The stage ``stage`` of ``model``; a :class:`~worldmodels.ConfigError` when the model has no such stage."""
    found = get_stage(stage)
    declared = model_stages(model)
    if stage not in declared:
        raise ConfigError(
            f"{model.name or 'This model'} has no {stage!r} stage: its components declare {', '.join(declared) or 'none'} "
            f"(e.g. a recorded-action model learns nothing on its own, so it has no 'lam' stage). Pick one of those, "
            "or stage=all."
        )
    return found


def default_stages(model: WorldModel) -> tuple[str, ...]:
    """What ``stage=all`` runs for ``model``: its declared stages marked :attr:`TrainingStage.in_all`, in order."""
    return tuple(name for name in model_stages(model) if _STAGES[name].in_all)


def stages_to_run(model: WorldModel, stage: str, all_stages: Sequence[str] | None = None) -> tuple[str, ...]:
    """The stages ``train.stage=STAGE`` runs for ``model``, in order.

    Args:
        model: the world model.
        stage: a stage name, or ``all``.
        all_stages: what ``all`` means (``train.all_stages``); ``None``: :func:`default_stages`.

    Raises:
        ConfigError: for a stage the model does not declare, or a list that runs a stage before
            one it takes a component from (``[dynamics, lam]`` would co-train a fresh action model
            and then train another one that nothing uses).
    """
    if stage != "all":
        check_model_stage(model, stage)
        return (stage,)
    if not all_stages:
        return default_stages(model)
    order = [check_model_stage(model, name).name for name in all_stages]
    for index, name in enumerate(order):
        later = [source for _, source in _STAGES[name].loads if source in order[index + 1:]]
        if later:
            raise ConfigError(
                f"train.all_stages={order} runs {name} before {', '.join(later)}, which it takes a trained component "
                f"from; list {', '.join(later)} first."
            )
    return tuple(order)


def trained_components(stage: str, freeze_action_model: bool = False) -> tuple[str, ...]:
    """The :class:`~worldmodels.WorldModel` attributes a stage trains."""
    if stage not in _STAGES:
        raise ValueError(f"Unknown stage {stage!r}; the stages are {', '.join(_STAGES)}.")
    return _STAGES[stage].trained(freeze_action_model)


class StageLoss(nn.Module):
    """The module the trainer wraps (DDP / FSDP / compile): ``forward(batch)`` is a stage's loss.

    Args:
        model: the world model.
        stage: a registered stage name (``tokenizer``, ``lam``, ``dynamics``, ...).
        freeze_action_model: keep the stage's ``freezable`` components (the action model) frozen.

    Shapes:
        ``forward``: a batch dict with ``video`` ``B T C H W`` float in ``[0, 1]`` and, where
        known, ``actions`` / ``rewards`` / ``terminated`` ``B T-1`` and ``tokens`` ``B T h w``
        -> ``(loss, metrics)``.
    """

    def __init__(self, model: WorldModel, stage: str, freeze_action_model: bool = False) -> None:
        super().__init__()
        self.model = model
        self.stage = stage
        self.definition = get_stage(stage)
        self.freeze_action_model = freeze_action_model
        self.trained = self.definition.trained(freeze_action_model)
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
        serves them.
        """
        return self.definition.loss(self.model, batch, self.freeze_action_model)


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
