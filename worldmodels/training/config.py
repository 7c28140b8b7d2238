"""Training and data settings: the ``train:`` and ``data:`` sections of the primary config.

:class:`TrainConfig` and :class:`DataConfig` are the one definition of these settings: the
primary config's ``train:`` and ``data:`` sections are these dataclasses as typed Hydra
structured configs (so an override of the wrong type is refused when the config is composed,
and no YAML restates their defaults). Build them from a composed config with
:func:`configs_from` (which returns the dataclasses themselves) or directly in Python::

    cfg = TrainConfig(stage="tokenizer", steps=200, batch_size=8, lr=3e-4)

Stages (the paper's training order, section 2.1 of Bruce et al. 2024):

* ``tokenizer``: the video tokenizer alone (``WorldModel.tokenizer_loss``);
* ``lam``: the latent action model alone (``WorldModel.action_model_loss``);
* ``dynamics``: the dynamics co-trained with the latent action model
  (``WorldModel.dynamics_loss(video, train_action_model=True)``), the tokenizer frozen;
  ``freeze_action_model=True`` keeps a pre-trained LAM frozen instead;
* ``all``: the model's stages that ``stage=all`` runs: ``tokenizer`` then ``dynamics``
  (:data:`ALL_STAGES`) for the built-in components, or the list ``all_stages`` names
  (``[tokenizer, lam, dynamics]`` pre-trains the latent action model before co-training it).

A model declares which stages train it and plug-ins may register more
(:mod:`worldmodels.training.stages`); ``stage`` accepts every registered one.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worldmodels.build_config import ConfigError, to_container

STAGES: tuple[str, ...] = ("tokenizer", "lam", "dynamics")
"""The built-in stages, in the order a run directory chains them (plug-ins may register more)."""

ALL_STAGES: tuple[str, ...] = ("tokenizer", "dynamics")
"""What ``stage=all`` runs for a model of the built-in components: the paper's two stages."""


def _stage_names() -> tuple[str, ...]:
    from worldmodels.training.stages import stage_names

    return stage_names()

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
STRATEGIES: tuple[str, ...] = ("auto", "none", "ddp", "fsdp")

_PER_STAGE_FORBIDDEN = ("stage", "all_stages", "per_stage", "run_dir", "resume", "strategy", "device")


def _unknown_keys(kind: str, keys: list[str], known: list[str], section: str) -> ConfigError:
    hints = []
    for key in keys:
        close = difflib.get_close_matches(key, known, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ConfigError(
        f"Unknown {kind} setting(s) {', '.join(hints)} in the {section} section. Known settings: {', '.join(known)}."
    )


@dataclass
class TrainConfig:
    """How to train one stage (or all stages) of a :class:`~worldmodels.WorldModel`.

    Optimisation follows the paper's tokenizer recipe by default: AdamW, lr ``3e-4``, betas
    ``(0.9, 0.9)``, weight decay ``1e-4`` (on matrices only; biases, norms and other 1-D
    parameters are not decayed), linear warmup then cosine decay to ``lr * min_lr_ratio``.

    Attributes:
        stage: ``tokenizer``, ``lam``, ``dynamics`` or ``all`` (tokenizer then dynamics, or ``all_stages``).
        all_stages: the stages ``stage=all`` runs, in order; ``None`` runs the model's own
            (:func:`~worldmodels.training.stages.default_stages`: tokenizer then dynamics for the
            built-in components). ``[tokenizer, lam, dynamics]`` trains the latent action model
            alone before the dynamics stage co-trains it.
        steps: optimizer steps of each stage.
        batch_size: *global* clips per optimizer step, split evenly over the ranks and the
            ``grad_accum`` micro-batches (so the loss curve does not depend on the world size).
        lr: peak learning rate.
        betas: AdamW betas.
        weight_decay: AdamW decoupled weight decay of parameters with two or more dimensions.
        eps: AdamW epsilon.
        warmup: linear warmup steps (the paper: 10k for the tokenizer, 5k for the dynamics).
        min_lr_ratio: the cosine ends at ``lr * min_lr_ratio`` (the paper's dynamics: 3e-5 to 3e-6).
        grad_clip: clip the global gradient norm to this value (``0`` disables clipping).
        grad_accum: micro-batches accumulated per optimizer step.
        precision: ``fp32``, ``bf16`` (``torch.autocast`` with bfloat16, on CPU too), or ``auto``:
            bf16 where the device multiplies bf16 natively (a CUDA GPU with bf16, a CPU with AMX
            or AVX-512 BF16), fp32 elsewhere, where emulated bf16 is many times slower
            (:mod:`worldmodels.training.precision`).
        compile: wrap the training step's module in ``torch.compile``.
        seed: seeds the model initialisation, the data order and every random generator.
        checkpoint_every: write a training checkpoint every this many steps (``0``: only at the end).
        keep_last: keep this many most recent training checkpoints (``0`` keeps all).
        log_every: steps between progress / TensorBoard / ``metrics.jsonl`` records.
        image_every: steps between reconstruction / generation images in TensorBoard (``0`` disables).
        val_every: steps between validation losses on the held-out data (``0`` disables).
        val_batches: global batches of held-out data per validation.
        image_samples: clips in the fixed batch shown as images.
        num_workers: DataLoader worker processes (``0`` loads in the training process).
        run_dir: the run directory (default ``runs/<model name>``); see :mod:`worldmodels.training`.
        resume: continue from the newest readable checkpoint of each stage in ``run_dir``.
        init_from: a ``WorldModel.save_pretrained`` directory, a training checkpoint, or a run
            directory to start from instead of the previous stage of this run.
        init_components: the components to take from ``init_from`` (e.g. ``[tokenizer]`` to reuse
            a trained tokenizer in a model with another action model); ``None`` takes all of them.
        cache_tokens: in the ``dynamics`` stage, encode every training clip once with the frozen
            tokenizer and serve the tokens in the batches (:mod:`worldmodels.training.token_cache`).
        token_cache_dir: where the token cache lives (default ``RUN/token_cache``); runs that
            share a tokenizer and data can share it.
        freeze_action_model: in the ``dynamics`` stage, keep a pre-trained latent action model
            frozen (the dynamics then train on its actions) instead of co-training it.
        strategy: ``auto`` (DDP under ``torchrun`` with several processes, else none), ``none``,
            ``ddp``, or ``fsdp`` (PyTorch's ``fully_shard``).
        device: ``auto`` (the local CUDA device when there is one, else CPU), ``cpu``, ``cuda``.
        progress: show a tqdm progress bar.
        tensorboard: write TensorBoard event files.
        max_bad_steps: give up after this many consecutive steps with a non-finite loss or
            gradient (such steps are skipped, never applied).
        find_unused_parameters: passed to ``DistributedDataParallel`` for components with
            parameters that a stage's loss does not use.
        per_stage: settings that differ by stage, e.g. ``{"dynamics": {"lr": 3e-5, "steps": 500}}``.
    """

    stage: str = "tokenizer"
    all_stages: list[str] | None = None
    steps: int = 10_000
    batch_size: int = 8
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.9)
    weight_decay: float = 1e-4
    eps: float = 1e-8
    warmup: int = 1000
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    grad_accum: int = 1
    precision: str = "fp32"
    compile: bool = False
    seed: int = 0
    checkpoint_every: int = 500
    keep_last: int = 3
    log_every: int = 10
    image_every: int = 500
    val_every: int = 0
    val_batches: int = 4
    image_samples: int = 4
    num_workers: int = 0
    run_dir: str | None = None
    resume: bool = False
    init_from: str | None = None
    init_components: list[str] | None = None
    cache_tokens: bool = False
    token_cache_dir: str | None = None
    freeze_action_model: bool = False
    strategy: str = "auto"
    device: str = "auto"
    progress: bool = True
    tensorboard: bool = True
    max_bad_steps: int = 10
    find_unused_parameters: bool = False
    per_stage: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        if self.init_components is not None:
            self.init_components = [str(c) for c in self.init_components]
        if self.all_stages is not None:
            self.all_stages = [str(s) for s in self.all_stages]
        self.validate()

    def validate(self) -> None:
        """Check every setting; raise :class:`~worldmodels.ConfigError` naming the bad one and the fix."""
        problems = []
        stages = _stage_names()
        if self.stage not in (*stages, "all"):
            problems.append(f"stage={self.stage!r} is not one of {', '.join((*stages, 'all'))}")
        if self.all_stages is not None:
            unknown = [s for s in self.all_stages if s not in stages]
            if not self.all_stages or unknown or len(set(self.all_stages)) < len(self.all_stages):
                problems.append(f"all_stages={list(self.all_stages)!r} must list stages ({', '.join(stages)}), each "
                                "once, in the order to run them (or be null for the model's own)")
        for name in ("steps", "batch_size", "grad_accum", "val_batches", "image_samples"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name}={getattr(self, name)!r} must be >= 1")
        for name in ("warmup", "checkpoint_every", "keep_last", "log_every", "image_every", "val_every",
                     "num_workers", "max_bad_steps"):
            if int(getattr(self, name)) < 0:
                problems.append(f"{name}={getattr(self, name)!r} must be >= 0")
        if self.lr <= 0:
            problems.append(f"lr={self.lr!r} must be > 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            problems.append(f"betas={list(self.betas)!r} must be two numbers in [0, 1)")
        if self.weight_decay < 0 or self.eps <= 0 or self.grad_clip < 0:
            problems.append("weight_decay and grad_clip must be >= 0 and eps > 0")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio={self.min_lr_ratio!r} must lie in [0, 1]")
        if self.precision not in PRECISIONS:
            problems.append(f"precision={self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy={self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            problems.append(f"device={self.device!r} is not auto, cpu, cuda or cuda:N")
        if self.init_components is not None:
            from worldmodels.interfaces import COMPONENT_KINDS

            bad = [c for c in self.init_components if c not in COMPONENT_KINDS]
            if bad:
                problems.append(f"init_components names {bad}, which are not components ({', '.join(COMPONENT_KINDS)})")
            elif not self.init_from:
                problems.append("init_components needs init_from (where to take those components from)")
        if not isinstance(self.per_stage, Mapping):
            problems.append(f"per_stage must map a stage to settings, got {self.per_stage!r}")
        else:
            known = [f.name for f in dataclasses.fields(self) if f.name not in _PER_STAGE_FORBIDDEN]
            for stage, settings in self.per_stage.items():
                if stage not in stages:
                    problems.append(f"per_stage names {stage!r}, which is not a stage ({', '.join(stages)})")
                    continue
                unknown = [k for k in (settings or {}) if k not in known]
                if unknown:
                    problems.append(str(_unknown_keys("train", unknown, known, f"train.per_stage.{stage}")))
        if problems:
            raise ConfigError("Invalid training settings: " + "; ".join(problems) + ".")

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages this config runs for a model of the built-in components (:func:`~worldmodels.training.train`
        asks the model which stages ``all`` means)."""
        if self.stage != "all":
            return (self.stage,)
        return tuple(self.all_stages) if self.all_stages else ALL_STAGES

    def for_stage(self, stage: str) -> TrainConfig:
        """This config for one stage: ``stage`` set and ``per_stage[stage]`` applied."""
        if stage not in _stage_names():
            raise ConfigError(f"Unknown stage {stage!r}; the stages are {', '.join(_stage_names())}.")
        values = dataclasses.asdict(self)
        values.update(dict(self.per_stage.get(stage) or {}))
        values["stage"] = stage
        return TrainConfig(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (``betas`` as a list)."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainConfig:
        """Build from a mapping (e.g. the composed ``train`` section), rejecting unknown keys."""
        values = dict(to_container(values or {}))
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in known]
        if unknown:
            raise _unknown_keys("train", unknown, known, "train")
        return cls(**values)


@dataclass
class DataConfig:
    """Where the training clips come from (the ``data:`` section).

    Attributes:
        path: a directory (or file, or list of them) of videos / recorded shards / npz arrays,
            read with :class:`~worldmodels.data.clips.ClipDataset`.
        split: the split of recorded data sets to train on (``None``: every file).
        val_path: held-out data for validation (default: ``path`` when ``val_split`` is set).
        val_split: the split of ``val_path`` (or ``path``) used for validation.
        num_frames: frames per clip (default: the model's ``num_frames``).
        image_size: frame size (default: the model's ``image_size``).
        stride: frames between clip starts (default: non-overlapping clips).
        frame_skip: take every ``frame_skip``-th frame.
        synthetic: train on the seeded moving-sprite world instead of files (no ``path`` needed).
        synthetic_clips: number of synthetic training clips.
        synthetic_val_clips: number of synthetic held-out clips (another seed).
    """

    # str | list[str] | None; typed Any because structured configs cannot hold a union with a list
    path: Any = None
    split: str | None = None
    val_path: Any = None  # str | list[str] | None
    val_split: str | None = None
    num_frames: int | None = None
    image_size: Any = None  # int | list[int] | None
    stride: int | None = None
    frame_skip: int = 1
    synthetic: bool = False
    synthetic_clips: int = 256
    synthetic_val_clips: int = 32

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> DataConfig:
        """Build from a mapping (e.g. the composed ``data`` section), rejecting unknown keys."""
        values = dict(to_container(values or {}))
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in known]
        if unknown:
            raise _unknown_keys("data", unknown, known, "data")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return dataclasses.asdict(self)


def configs_from(cfg: Mapping[str, Any]) -> tuple[TrainConfig, DataConfig]:
    """The :class:`TrainConfig` and :class:`DataConfig` of a composed config (``train`` / ``data`` sections).

    A composed config's sections are typed by these dataclasses and come back as instances of
    them directly (validated); a plain mapping is checked key by key (:meth:`TrainConfig.from_dict`).
    """
    return _section(cfg, "train", TrainConfig), _section(cfg, "data", DataConfig)


def _section(cfg: Mapping[str, Any], key: str, cls: type[Any]) -> Any:
    from omegaconf import DictConfig, OmegaConf

    node = cfg.get(key) if isinstance(cfg, Mapping) else None  # a DictConfig is a Mapping
    if isinstance(node, DictConfig) and OmegaConf.get_type(node) is cls:
        return OmegaConf.to_object(node)
    return cls.from_dict(node)
