"""A whole training run: :func:`train` runs the stages a config asks for, one :class:`~worldmodels.training.trainer.Trainer` each.

Run directory layout (``train.run_dir``, default ``runs/<model name>``)::

    RUN/
      tokenizer/                      one directory per stage
        run.json                      settings, model config, world size, where frozen weights came from
        metrics.jsonl                 one JSON record per logged step (train and validation)
        tensorboard/                  TensorBoard event files (scalars, reconstructions, samples)
        checkpoints/
          step-000500/                a training checkpoint (see worldmodels.training.checkpointing):
            config.json               \\ the model, loadable with WorldModel.from_pretrained(dir)
            model.safetensors         /
            state.safetensors         optimizer tensors + RNG states of every rank
            state.json                step, data position, scheduler, JSON skeletons, checksums
          step-001000/ ...            the last ``keep_last`` are kept
        final/                        WorldModel.save_pretrained of the finished stage
      lam/ ...
      dynamics/ ...

A stage starts from ``train.init_from`` when given; otherwise it takes the parts other stages
trained from their ``final/`` directories in the same run: ``lam`` and ``dynamics`` load the
tokenizer from ``RUN/tokenizer/final`` (required for ``dynamics``), ``dynamics`` loads the action
model from ``RUN/lam/final`` when it exists (required with ``freeze_action_model``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from worldmodels.build_config import ConfigError, to_container
from worldmodels.checkpoint import CONFIG_FILE, CheckpointError, read_json
from worldmodels.training.checkpointing import list_checkpoints
from worldmodels.training.config import DataConfig, TrainConfig, configs_from
from worldmodels.training.data import build_datasets
from worldmodels.training.distributed import setup_distributed, teardown_distributed
from worldmodels.training.stages import CHECKPOINTS_DIR, model_weights_dir, stage_names, stages_to_run
from worldmodels.training.trainer import StageResult, Trainer, build_seeded_model
from worldmodels.world_model import WorldModel

__all__ = ["TrainResult", "train"]


@dataclass
class TrainResult:
    """What :func:`train` produced: the run directory and one :class:`StageResult` per stage."""

    run_dir: Path
    stages: dict[str, StageResult]

    @property
    def final_dir(self) -> Path:
        """The ``final`` directory of the last stage run (the finished model)."""
        return list(self.stages.values())[-1].final_dir


def _model_spec_from_run(train_cfg: TrainConfig) -> dict[str, Any] | None:
    """The model config saved in ``init_from`` or in the run directory (for resuming without model=...)."""
    candidates: list[Path] = []
    if train_cfg.init_from:
        candidates.append(model_weights_dir(train_cfg.init_from))
    elif train_cfg.run_dir:
        run = Path(train_cfg.run_dir)
        for stage in stage_names():
            candidates.extend(path for _, path in reversed(list_checkpoints(run / stage / CHECKPOINTS_DIR)))
        with contextlib.suppress(CheckpointError):
            candidates.append(model_weights_dir(run))
    for directory in candidates:
        with contextlib.suppress(CheckpointError):
            saved = read_json(directory / CONFIG_FILE)
            if isinstance(saved, dict) and isinstance(saved.get("model"), dict):
                return {k: v for k, v in saved["model"].items() if k != "library_version"}
    return None


def _model_spec_from_config(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    model = cfg.get("model")
    if isinstance(model, Mapping) and model.get("name") and all(cfg.get(k) for k in ("tokenizer", "action_model",
                                                                                       "dynamics", "sampler")):
        from worldmodels.build_config import flatten_composed_config

        return flatten_composed_config(cfg)
    return None


def train(
    config: Mapping[str, Any] | TrainConfig,
    *,
    model: WorldModel | str | Mapping[str, Any] | None = None,
    data: DataConfig | Mapping[str, Any] | None = None,
    train_data: Dataset | None = None,
    val_data: Dataset | None = None,
) -> TrainResult:
    """Train the stage(s) a config asks for; ``stage=all`` runs tokenizer then dynamics.

    Args:
        config: a composed config (``worldmodels.config.compose([...])``: ``model``, components,
            ``train``, ``data``), or a :class:`TrainConfig`.
        model: the model, a preset name or a model config; default: the composed config's model,
            else the model saved in ``train.init_from`` or in the run directory (when resuming).
        data: data settings, when ``config`` is a :class:`TrainConfig`.
        train_data: a dataset to train on instead of the one ``data`` describes.
        val_data: a held-out dataset instead of the one ``data`` describes.

    Returns:
        A :class:`TrainResult` with the run directory and each stage's result.

    Raises:
        ConfigError: for inconsistent settings, a missing model or missing data.

    Example:
        >>> from worldmodels.config import compose
        >>> cfg = compose(["model=genie-tiny", "train.stage=all", "data.synthetic=true"])  # doctest: +SKIP
        >>> train(cfg).final_dir                                                           # doctest: +SKIP
        PosixPath('runs/genie-tiny/dynamics/final')
    """
    if isinstance(config, TrainConfig):
        train_cfg = config
        data_cfg = data if isinstance(data, DataConfig) else DataConfig.from_dict(data)
        spec: Any = None
    else:
        train_cfg, composed_data = configs_from(config)  # the typed sections come back as the dataclasses
        data_cfg = data if isinstance(data, DataConfig) else (
            DataConfig.from_dict(data) if data is not None else composed_data)
        spec = _model_spec_from_config(to_container(config))
    if model is not None:
        spec = model
    if spec is None:
        spec = _model_spec_from_run(train_cfg)
    if spec is None:
        raise ConfigError(
            "No model to train: pick one with model=NAME (e.g. model=genie-tiny; `worldmodels list --kind model` "
            "shows them), or pass train.init_from=DIR / resume a run directory that holds one."
        )
    first = spec if isinstance(spec, WorldModel) else build_seeded_model(spec, train_cfg.seed)
    run_dir = Path(train_cfg.run_dir or Path("runs") / (first.name or "model"))
    if train_data is None:
        train_data, built_val = build_datasets(data_cfg, num_frames=first.num_frames, image_size=first.image_size,
                                               seed=train_cfg.seed)
        val_data = val_data if val_data is not None else built_val
    ctx = setup_distributed(train_cfg.device)  # one process group for every stage
    results: dict[str, StageResult] = {}
    try:
        _run_stages(train_cfg, spec, first, run_dir, train_data, val_data, data_cfg, results)
    finally:
        teardown_distributed(ctx)
    return TrainResult(run_dir, results)


def _run_stages(train_cfg: TrainConfig, spec: Any, first: WorldModel, run_dir: Path, train_data: Dataset,
                val_data: Dataset | None, data_cfg: DataConfig, results: dict[str, StageResult]) -> None:
    stages = stages_to_run(first, train_cfg.stage, train_cfg.all_stages)
    if not stages:
        raise ConfigError(f"{first.name or 'The model'} declares no stage that stage=all runs; name one with train.stage.")
    for index, stage in enumerate(stages):
        stage_cfg = train_cfg.for_stage(stage)
        stage_cfg.run_dir = str(run_dir)
        if isinstance(spec, WorldModel):
            stage_model: WorldModel = spec
        else:
            stage_model = first if index == 0 else build_seeded_model(spec, stage_cfg.seed)
        trainer = Trainer(stage_model, stage_cfg, train_data, val_data, data_config=data_cfg)
        results[stage] = trainer.fit()
