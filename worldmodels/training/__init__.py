"""The component-agnostic trainer: stages, optimisation, checkpoints, logging, DDP / FSDP.

It only calls the :class:`~worldmodels.WorldModel` losses (``tokenizer_loss``,
``action_model_loss``, ``dynamics_loss``), so any registered components train with it.

Python::

    from worldmodels.config import compose
    from worldmodels.training import train

    cfg = compose(["model=genie-tiny", "train.stage=all", "train.steps=200", "data.path=data/coinrun"])
    result = train(cfg)                       # tokenizer, then dynamics (+ co-trained LAM)
    model = WorldModel.from_pretrained(result.final_dir)

Command line (the same overrides; ``stage=`` and ``data=DIR`` are shorthands)::

    worldmodels train model=genie-tiny stage=tokenizer train.steps=200 data=data/coinrun
    worldmodels train recipe=coinrun train.resume=true
    torchrun --nproc_per_node 2 -m worldmodels train model=genie-tiny data=data/coinrun

Run directory (``train.run_dir``, default ``runs/<model name>``)::

    RUN/<stage>/run.json                          settings, sources of frozen weights
    RUN/<stage>/metrics.jsonl                     one JSON record per logged step
    RUN/<stage>/tensorboard/                      scalars, reconstructions, generated frames
    RUN/<stage>/checkpoints/step-000500/          config.json + model.safetensors (a model
                                                  directory) + state.safetensors + state.json
    RUN/<stage>/final/                            WorldModel.save_pretrained of the finished stage

Modules: :mod:`~worldmodels.training.config` (settings), :mod:`~worldmodels.training.stages`
(what each stage trains), :mod:`~worldmodels.training.trainer` (the loop), :mod:`~worldmodels.training.run` (a whole run),
:mod:`~worldmodels.training.checkpointing`, :mod:`~worldmodels.training.sampler` (data order),
:mod:`~worldmodels.training.schedule`, :mod:`~worldmodels.training.distributed`,
:mod:`~worldmodels.training.loggers`, :mod:`~worldmodels.training.data`.
"""

from worldmodels.training.checkpointing import CheckpointWarning, latest_checkpoint, list_checkpoints, read_checkpoint
from worldmodels.training.config import ALL_STAGES, STAGES, DataConfig, TrainConfig, configs_from
from worldmodels.training.run import TrainResult, train
from worldmodels.training.sampler import GlobalBatchSampler
from worldmodels.training.schedule import warmup_cosine
from worldmodels.training.stages import (
    StageLoss,
    TrainingStage,
    get_stage,
    load_weights,
    register_stage,
    trained_components,
)
from worldmodels.training.trainer import StageResult, Trainer

__all__ = [
    "ALL_STAGES",
    "STAGES",
    "CheckpointWarning",
    "DataConfig",
    "GlobalBatchSampler",
    "StageLoss",
    "StageResult",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingStage",
    "configs_from",
    "get_stage",
    "latest_checkpoint",
    "list_checkpoints",
    "load_weights",
    "read_checkpoint",
    "register_stage",
    "train",
    "trained_components",
    "warmup_cosine",
]
