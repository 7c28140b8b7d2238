"""The component-agnostic trainer: one :class:`Trainer` trains one stage of a world model.

It runs the loop (micro-batches, gradient accumulation, clipping, AdamW with a warm-up-cosine
schedule, bf16 autocast, DDP / FSDP), validates on held-out clips, logs metrics and pictures,
and writes exact-resume checkpoints. :func:`worldmodels.training.run.train` chains the stages of
a run; the run directory's layout is described there.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from worldmodels.build_config import ConfigError, to_container
from worldmodels.checkpoint import CONFIG_FILE, CheckpointError, check_state_dict, write_json
from worldmodels.interfaces import DeferredStateUpdates
from worldmodels.training.checkpointing import (
    LoadedCheckpoint,
    capture_rng,
    checkpoint_name,
    derived_seed,
    latest_checkpoint,
    list_checkpoints,
    pack_training_state,
    prune_checkpoints,
    read_checkpoint,
    remove_stale_temporaries,
    restore_rng,
    seed_everything,
    write_checkpoint,
)
from worldmodels.training.config import DataConfig, TrainConfig
from worldmodels.training.data import collate_clips, fixed_batch, make_loader
from worldmodels.training.distributed import (
    DistContext,
    all_reduce_gradients,
    clip_gradients,
    full_state,
    grad_norm_value,
    gradient_sync,
    load_full_state,
    replicated_parameters,
    resolve_strategy,
    setup_distributed,
    teardown_distributed,
    wrap_ddp,
    wrap_fsdp,
)
from worldmodels.training.loggers import RunLogger
from worldmodels.training.optim import build_optimizer, clear_moments
from worldmodels.training.pictures import stage_pictures
from worldmodels.training.precision import resolve_precision
from worldmodels.training.sampler import GlobalBatchSampler, split_batch
from worldmodels.training.schedule import build_scheduler
from worldmodels.training.stages import (
    CHECKPOINTS_DIR,
    FINAL_DIR,
    StageLoss,
    check_model_stage,
    default_stages,
    load_weights,
    restore_trainable,
    set_trainable,
)
from worldmodels.world_model import WorldModel

RUN_FILE = "run.json"


@dataclass
class StageResult:
    """What one stage's training produced.

    Attributes:
        stage: the stage.
        step: optimizer steps done (the stage's ``steps`` when it finished).
        final_dir: ``RUN/<stage>/final`` (a ``WorldModel.save_pretrained`` directory).
        checkpoint_dir: ``RUN/<stage>/checkpoints``.
        history: the records written to ``metrics.jsonl`` by this process (rank 0).
        resumed_from: the checkpoint step this run continued from, if any.
        already_done: the stage had finished before (nothing was trained).
    """

    stage: str
    step: int
    final_dir: Path
    checkpoint_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None
    already_done: bool = False

    @property
    def last_loss(self) -> float | None:
        """The loss of the last logged training step."""
        losses = [r["loss"] for r in self.history if "loss" in r]
        return float(losses[-1]) if losses else None


def _tensors_to(batch: Mapping[str, Any], device: torch.device) -> dict[str, Tensor]:
    """The tensors of a collated batch (``video``, ``actions``, ``rewards``, ``terminated``, ``tokens``) on ``device``."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, Tensor)}


def _model_config(model: WorldModel) -> dict[str, Any]:
    return {k: v for k, v in model.config.items() if k != "library_version"}




def build_seeded_model(spec: str | Mapping[str, Any], seed: int) -> WorldModel:
    """Build a model from a preset name or config after seeding every generator with ``seed`` (same seed, same weights)."""
    seed_everything(seed)
    return WorldModel.from_config(spec if isinstance(spec, str) else to_container(spec))


class Trainer:
    """Trains one stage of a :class:`~worldmodels.WorldModel` (see the module docs for the layout).

    Args:
        model: the model, or a preset name / model config to build (seeded with ``config.seed``).
        config: the training settings; ``config.stage`` must be one stage (not ``all``).
        train_data: a dataset of clip dicts (``{"video": T C H W, ...}``).
        val_data: held-out clips for validation losses and images (optional).
        data_config: recorded in ``run.json`` (informational).

    Example:
        >>> from worldmodels.data.synthetic import SyntheticClipDataset       # doctest: +SKIP
        >>> trainer = Trainer("genie-tiny", TrainConfig(stage="tokenizer", steps=100, run_dir="runs/x"),
        ...                   SyntheticClipDataset(64, 16, 64))              # doctest: +SKIP
        >>> result = trainer.fit(); result.final_dir                       # doctest: +SKIP
        PosixPath('runs/x/tokenizer/final')
    """

    def __init__(
        self,
        model: WorldModel | str | Mapping[str, Any],
        config: TrainConfig,
        train_data: Dataset,
        val_data: Dataset | None = None,
        *,
        data_config: DataConfig | None = None,
    ) -> None:
        if config.stage == "all":
            raise ConfigError("Trainer runs one stage; use worldmodels.training.train(...) for stage=all.")
        config.validate()
        self.config = config
        self.stage = config.stage
        self.model = model if isinstance(model, WorldModel) else build_seeded_model(model, config.seed)
        self.definition = check_model_stage(self.model, self.stage)
        self.train_data = train_data
        self.val_data = val_data
        self.data_config = data_config
        skip = getattr(train_data, "frame_skip", None)
        if skip is not None:  # the model is what its clips were: its steps are skip game frames each
            self.model.frame_skip = int(skip)
        name = self.model.name or "model"
        self.run_dir = Path(config.run_dir or Path("runs") / name)
        self.stage_dir = self.run_dir / self.stage
        self.checkpoint_dir = self.stage_dir / CHECKPOINTS_DIR
        self.final_dir = self.stage_dir / FINAL_DIR
        self.step = 0
        self.position = 0
        self.resumed_from: int | None = None
        self.ctx: DistContext | None = None
        self._ready = False
        self._previous_flags: dict[str, bool] | None = None
        self._bad_steps = 0
        self._history: list[dict[str, Any]] = []
        self._images_note = False

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Join the process group, load weights, wrap the model, build optimizer, schedule and data.

        Called by :meth:`fit`; call it yourself only to drive :meth:`train_step` directly.
        """
        if self._ready:
            return
        cfg = self.config
        self.ctx = ctx = setup_distributed(cfg.device)
        self.strategy = resolve_strategy(cfg.strategy, ctx)
        self.micro_batch = split_batch(cfg.batch_size, ctx.world_size, cfg.grad_accum)
        self.precision = resolve_precision(cfg.precision, ctx.device)
        self.autocast_dtype = torch.bfloat16 if self.precision == "bf16" else None

        checkpoint = self._find_checkpoint()
        self.init_sources: dict[str, str] = {}
        if checkpoint is None:
            self._load_initial_weights()
        trained = self.definition.trained(cfg.freeze_action_model)
        self._previous_flags = set_trainable(self.model, trained)
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ConfigError(f"Stage {self.stage!r} has no trainable parameters in {', '.join(trained)}.")
        if self.strategy != "fsdp":
            self.model.to(ctx.device)
        self.stage_module = StageLoss(self.model, self.stage, cfg.freeze_action_model)
        if self.strategy == "ddp":
            self._wrapped: nn.Module = wrap_ddp(self.stage_module, ctx, cfg.find_unused_parameters)
        elif self.strategy == "fsdp":
            self._wrapped = wrap_fsdp(self.stage_module, ctx, trained)
        else:
            self._wrapped = self.stage_module
        self._wrapped.train()
        self._module: nn.Module = cast(nn.Module, torch.compile(self._wrapped)) if cfg.compile else self._wrapped

        self.optimizer = build_optimizer(self._wrapped, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                         weight_decay=cfg.weight_decay)
        # modules whose training forward changes their state (VQ codebooks): apply it once per taken step
        self._stateful = [m for m in self.model.modules() if isinstance(m, DeferredStateUpdates)]
        for module in self._stateful:
            module.defer_state_updates = True
        self.scheduler = build_scheduler(self.optimizer, total_steps=cfg.steps, warmup=cfg.warmup,
                                         min_ratio=cfg.min_lr_ratio)
        self._params = [p for p in self._wrapped.parameters() if p.requires_grad]
        replicated = {id(p) for p in replicated_parameters(self._wrapped)} if self.strategy == "fsdp" else set()
        self._replicated = [p for p in self._params if id(p) in replicated]

        if checkpoint is not None:
            self._restore(checkpoint)
        else:
            seed_everything(derived_seed(cfg.seed, self.stage, ctx.rank))
        h, w = self.model.token_grid
        self.tokens_per_frame = h * w
        if cfg.cache_tokens and self.definition.reads_tokens:
            self._use_token_cache()
        self._write_run_file()
        self._ready = True

    def _use_token_cache(self) -> None:
        """Serve the training clips with their tokens, encoded once (rank 0 writes, the others read)."""
        from worldmodels.training.token_cache import cached_tokens

        ctx, cfg = self.ctx, self.config
        assert ctx is not None
        cache_dir = Path(cfg.token_cache_dir) if cfg.token_cache_dir else self.run_dir / "token_cache"
        say = (lambda msg: print(f"[{self.stage}] {msg}", flush=True)) if ctx.is_main else (lambda _msg: None)
        cached = None
        for turn in ("main", "others"):
            if (turn == "main") == ctx.is_main:
                cached = cached_tokens(self.train_data, self.model.tokenizer, cache_dir, autocast=self._autocast,
                                       device=ctx.device, progress=cfg.progress and ctx.is_main, log=say)
            ctx.barrier()
        if cached is None:
            say("token cache: this data set cannot be fingerprinted; encoding at every step instead")
            return
        self.train_data = cached

    def _find_checkpoint(self) -> LoadedCheckpoint | None:
        cfg, ctx = self.config, self.ctx
        assert ctx is not None
        if ctx.is_main:
            remove_stale_temporaries(self.checkpoint_dir)
        ctx.barrier()
        existing = list_checkpoints(self.checkpoint_dir)
        if not cfg.resume:
            if existing or (self.final_dir / CONFIG_FILE).exists():
                held = existing[-1][1].name if existing else FINAL_DIR
                raise ConfigError(
                    f"{self.stage_dir} already holds a trained stage ({held}). Pass train.resume=true to continue "
                    "it, or choose another train.run_dir (or delete that directory) to start over."
                )
            return None
        found: LoadedCheckpoint | None = None
        if ctx.is_main:  # rank 0 picks (and quarantines unreadable ones); the others follow its choice
            found = latest_checkpoint(self.checkpoint_dir)
        step = ctx.broadcast_int(found.step if found is not None else -1)
        if step < 0:
            if ctx.is_main and existing:
                warnings.warn(f"No readable checkpoint left in {self.checkpoint_dir}; stage {self.stage!r} "
                              "starts from scratch.", stacklevel=3)
            return None
        return found if found is not None else read_checkpoint(self.checkpoint_dir / checkpoint_name(step))

    def _load_initial_weights(self) -> None:
        """``init_from`` first, then the parts earlier stages of this run trained (they win)."""
        cfg = self.config
        if cfg.init_from:
            source = str(load_weights(self.model, cfg.init_from, cfg.init_components))
            for name in cfg.init_components or ["all"]:
                self.init_sources[name] = source
        required = self.definition.required(cfg.freeze_action_model)
        for component, source_stage in self.definition.loads:
            final = self.run_dir / source_stage / FINAL_DIR
            if (final / CONFIG_FILE).is_file():
                self.init_sources[component] = str(load_weights(self.model, final, [component]))
            elif (component, source_stage) in required and not cfg.init_from:
                frozen = component in self.definition.freezable and cfg.freeze_action_model
                fix = ("co-train it (train.freeze_action_model=false)" if frozen else
                       f"train.stage=all runs {', '.join(default_stages(self.model))} in order")
                raise ConfigError(
                    f"The {self.stage} stage needs a trained {component} from the {source_stage} stage, but {final} "
                    f"does not exist. Run train.stage={source_stage} first in the same train.run_dir, pass "
                    f"train.init_from=DIR with a trained model, or {fix}."
                )

    def _restore(self, checkpoint: LoadedCheckpoint) -> None:
        ctx, cfg = self.ctx, self.config
        assert ctx is not None
        state = checkpoint.state
        if state.get("stage") != self.stage:
            raise CheckpointError(f"{checkpoint.path} belongs to stage {state.get('stage')!r}, not {self.stage!r}.")
        model_state = {f"model.{k}": v for k, v in checkpoint.model_weights.items()}
        check_state_dict(self.model, checkpoint.model_weights, str(checkpoint.path), self.model.name)
        load_full_state(self._wrapped, self.optimizer, model_state, checkpoint.optimizer_state())
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = checkpoint.step
        self.position = int(state["position"])
        self._bad_steps = int(state.get("bad_steps", 0))
        self.resumed_from = self.step
        self.init_sources = dict(state.get("init_sources", {}))
        rng = checkpoint.rng_states(ctx.rank) if int(state.get("world_size", 1)) == ctx.world_size else None
        if rng is not None:
            restore_rng(rng, ctx.device)
        else:
            if ctx.is_main:
                warnings.warn(
                    f"{checkpoint.path} was written by {state.get('world_size')} process(es), this run has "
                    f"{ctx.world_size}: the data order continues exactly, random generators are reseeded.",
                    stacklevel=3,
                )
            seed_everything(derived_seed(cfg.seed, self.stage, ctx.rank, self.step))

    def _write_run_file(self) -> None:
        assert self.ctx is not None
        if not self.ctx.is_main:
            return
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        write_json({
            "stage": self.stage,
            "train": self.config.to_dict(),
            "data": self.data_config.to_dict() if self.data_config is not None else None,
            "model": _model_config(self.model),
            "world_size": self.ctx.world_size,
            "strategy": self.strategy,
            "device": str(self.ctx.device),
            "precision": self.precision,
            "micro_batch": self.micro_batch,
            "init_sources": self.init_sources,
            "resumed_from": self.resumed_from,
            "torch_version": torch.__version__,
        }, self.stage_dir / RUN_FILE)

    # ------------------------------------------------------------------ one step
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        assert self.ctx is not None
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.ctx.device.type, dtype=self.autocast_dtype)

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        """One optimizer step over this rank's ``grad_accum`` micro-batches.

        Gradients are averaged over micro-batches and ranks; a step whose loss or gradient norm
        is not finite is skipped (the weights stay as they were).

        Args:
            micro_batches: batched clip dicts (``video`` ``b T C H W`` and, where the data has
                them, ``actions`` / ``rewards`` / ``terminated`` ``b T-1`` with ``-1`` / ``NaN``
                unknown; every tensor reaches the stage's loss).

        Returns:
            Scalars averaged over ranks: ``loss``, the stage's metrics, ``grad_norm``, ``lr``,
            ``skipped`` (1.0 for a skipped step).

        Shapes:
            each ``video`` ``b T C H W`` with ``b = batch_size / (world_size * grad_accum)``.
        """
        self.setup()
        ctx = self.ctx
        assert ctx is not None
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, Tensor] = {}
        last = len(micro_batches) - 1
        for i, batch in enumerate(micro_batches):
            inputs = _tensors_to(batch, ctx.device)
            with gradient_sync(self._wrapped, self.strategy, sync=i == last):
                with self._autocast():
                    loss, metrics = self._module(inputs)
                (loss.float() / len(micro_batches)).backward()
            values = {"loss": loss.detach().float()}
            values.update({k: v.detach().float() for k, v in metrics.items()
                           if isinstance(v, Tensor) and v.numel() == 1 and k != "loss"})
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value.reshape(()) / len(micro_batches)
        keys = sorted(sums)
        reduced = ctx.all_reduce_mean(torch.stack([sums[k] for k in keys]))
        out = {k: float(v) for k, v in zip(keys, reduced.tolist())}
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else float("inf")
        if self.strategy == "fsdp":
            all_reduce_gradients(self._replicated, ctx)
            norm = float(clip_gradients(self._params, max_norm))
        else:
            norm = float(grad_norm_value(torch.nn.utils.clip_grad_norm_(self._params, max_norm)))
        out["grad_norm"] = norm
        out["lr"] = float(self.optimizer.param_groups[0]["lr"])
        if math.isfinite(out["loss"]) and math.isfinite(norm):
            self.optimizer.step()
            out["codes_reset"] = float(self._commit_state_updates())
            self._bad_steps = 0
            out["skipped"] = 0.0
        else:
            self.optimizer.zero_grad(set_to_none=True)
            for module in self._stateful:
                module.discard_state_updates()
            self._bad_steps += 1
            out["skipped"] = 1.0
        self.scheduler.step()
        self.step += 1
        self.position += self.config.batch_size
        return out

    def _commit_state_updates(self) -> int:
        """Apply the stateful modules' recorded updates; clear the optimizer moments of re-initialised rows."""
        count = 0
        for module in self._stateful:
            for name, rows in module.commit_state_updates().items():
                param = getattr(module, name)
                if isinstance(param, nn.Parameter) and param.requires_grad:
                    clear_moments(self.optimizer, param, rows)
                count += int(rows.sum())
        return count

    # ------------------------------------------------------------------ the loop
    def _batches(self) -> Iterator[list[dict[str, Any]]]:
        assert self.ctx is not None
        cfg = self.config
        sampler = GlobalBatchSampler(
            len(cast(Sized, self.train_data)), cfg.batch_size, rank=self.ctx.rank, world_size=self.ctx.world_size,
            grad_accum=cfg.grad_accum, seed=cfg.seed, start=self.position, num_steps=cfg.steps - self.step,
        )
        loader = make_loader(self.train_data, sampler, num_workers=cfg.num_workers,
                             pin_memory=self.ctx.device.type == "cuda", seed=cfg.seed)
        iterator = iter(loader)
        while True:
            group = []
            for _ in range(cfg.grad_accum):
                try:
                    group.append(next(iterator))
                except StopIteration:
                    return
            yield group

    def fit(self) -> StageResult:
        """Train until ``config.steps``, checkpointing, logging and validating on the way.

        Returns:
            The :class:`StageResult`; the trained model is in ``result.final_dir``.
        """
        try:
            self.setup()
            return self._fit()
        finally:
            for module in getattr(self, "_stateful", []):
                module.discard_state_updates()
                module.defer_state_updates = False
            if self._previous_flags is not None:
                restore_trainable(self.model, self._previous_flags)
                self._previous_flags = None
            if self.ctx is not None:
                if self.ctx.owns_group and getattr(self, "_wrapped", None) is not None:
                    # the process group ends here: nothing may keep the DDP reducer (and its gloo work) past it
                    self._wrapped = self._module = self.stage_module
                teardown_distributed(self.ctx)

    def _fit(self) -> StageResult:
        cfg, ctx = self.config, self.ctx
        assert ctx is not None
        if self.step >= cfg.steps:
            if not (self.final_dir / CONFIG_FILE).is_file():
                self._save_final()
            return self._result(already_done=True)
        logger = RunLogger(self.stage_dir, total_steps=cfg.steps, start_step=self.step, active=ctx.is_main,
                           progress=cfg.progress, tensorboard=cfg.tensorboard, stage=self.stage)
        self._logger = logger
        image_batch = self._image_batch() if cfg.image_every > 0 else None
        try:
            if self.resumed_from is not None:
                logger.message(f"[{self.stage}] resumed from step {self.resumed_from} ({self.checkpoint_dir})")
            if cfg.precision == "auto":
                why = "native bf16" if self.precision == "bf16" else "no native bf16"
                logger.message(f"[{self.stage}] precision auto: {self.precision} on {ctx.device} ({why})")
            frames = cfg.batch_size * self._clip_frames()
            interval_time, interval_steps = 0.0, 0
            tick = time.perf_counter()
            for micro_batches in self._batches():
                values = self.train_step(micro_batches)
                now = time.perf_counter()
                interval_time += now - tick
                interval_steps += 1
                if self._bad_steps > cfg.max_bad_steps:
                    raise FloatingPointError(
                        f"{self._bad_steps} consecutive steps had a non-finite loss or gradient (last: loss "
                        f"{values['loss']}, grad norm {values['grad_norm']}); nothing was applied or saved. Lower "
                        f"train.lr, enable train.grad_clip, or check the data; resume from {self.checkpoint_dir}."
                    )
                step = self.step
                if step % max(1, cfg.log_every) == 0 or step == cfg.steps:
                    rate = interval_steps / max(interval_time, 1e-9)
                    values["frames_per_s"] = frames * rate
                    values["tokens_per_s"] = frames * rate * self.tokens_per_frame
                    values["epoch"] = self.position / len(cast(Sized, self.train_data))
                    logger.log(step, values)
                    if ctx.is_main:
                        self._history.append({"step": step, **values})
                    interval_time, interval_steps = 0.0, 0
                logger.advance()
                if cfg.val_every and self.val_data is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                    val = self.validate()
                    logger.log(step, val, kind="val")
                    if ctx.is_main:
                        self._history.append({"step": step, **val})
                if image_batch is not None and (step % cfg.image_every == 0 or step == cfg.steps):
                    self._log_images(image_batch, step)
                if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
                    self.save_checkpoint()
                tick = time.perf_counter()
            self._save_final()
        finally:
            logger.close()
        return self._result()

    def _result(self, already_done: bool = False) -> StageResult:
        return StageResult(self.stage, self.step, self.final_dir, self.checkpoint_dir, list(self._history),
                           self.resumed_from, already_done)

    def _clip_frames(self) -> int:
        item = self.train_data[0]
        return int(item["video"].shape[0])

    # ------------------------------------------------------------------ validation and images
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """The stage's loss on ``val_batches`` fixed global batches of the held-out data.

        Random draws inside the loss (e.g. the dynamics' masks) use a fixed seed, so values of
        different steps are comparable; the training random stream is left untouched.

        Returns:
            ``{"val/loss": ..., "val/<metric>": ...}`` averaged over ranks.
        """
        self.setup()
        assert self.ctx is not None and self.val_data is not None
        ctx, cfg = self.ctx, self.config
        n = len(cast(Sized, self.val_data))
        share = cfg.batch_size // ctx.world_size
        sums: dict[str, Tensor] = {}
        chunks = 0
        devices = [ctx.device] if ctx.device.type == "cuda" else []
        self._wrapped.eval()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(derived_seed(cfg.seed, "validation", ctx.rank))
                for b in range(cfg.val_batches):
                    start = b * cfg.batch_size + ctx.rank * share
                    mine = [(start + j) % n for j in range(share)]
                    for c in range(0, share, self.micro_batch):
                        batch = collate_clips([self.val_data[i] for i in mine[c : c + self.micro_batch]])
                        with self._autocast():
                            loss, metrics = self._module(_tensors_to(batch, ctx.device))
                        values = {"loss": loss.float()}
                        values.update({k: v.float() for k, v in metrics.items()
                                       if isinstance(v, Tensor) and v.numel() == 1 and k != "loss"})
                        for key, value in values.items():
                            sums[key] = sums.get(key, 0.0) + value.reshape(())
                        chunks += 1
        finally:
            self._wrapped.train()
        keys = sorted(sums)
        reduced = ctx.all_reduce_mean(torch.stack([sums[k] / chunks for k in keys]))
        return {f"val/{k}": float(v) for k, v in zip(keys, reduced.tolist())}

    def _image_batch(self) -> dict[str, Any] | None:
        source = self.val_data if self.val_data is not None else self.train_data
        if self.ctx is None or not self.ctx.is_main:
            return None
        return fixed_batch(source, self.config.image_samples)

    @torch.no_grad()
    def _log_images(self, batch: dict[str, Any], step: int) -> None:
        assert self.ctx is not None
        if self.strategy == "fsdp":
            if not self._images_note and self.ctx.is_main:
                self._logger.message("[images] not drawn under FSDP (the parameters are sharded); "
                                     "use WorldModel.from_pretrained on a checkpoint instead.")
            self._images_note = True
            return
        if not self.ctx.is_main:
            return
        with self._autocast():
            pictures = stage_pictures(self.model, self.definition.pictures, batch, self.ctx.device, self.config.seed)
        for tag, grid in pictures.items():
            self._logger.image(tag, grid, step)

    # ------------------------------------------------------------------ checkpoints
    def _model_saver(self, model_state: dict[str, Tensor]):  # noqa: ANN202
        if self.strategy != "fsdp":
            return self.model.save_pretrained
        weights = {k[len("model."):]: v for k, v in model_state.items() if k.startswith("model.")}

        def save(directory: Path) -> None:
            with torch.device("meta"):
                shell = WorldModel.from_config(_model_config(self.model))
            shell.load_state_dict(weights, assign=True)
            shell.save_pretrained(directory)

        return save

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step-XXXXXX`` (a collective: every rank calls it; rank 0 writes).

        Returns:
            The checkpoint directory.
        """
        ctx, cfg = self.ctx, self.config
        assert ctx is not None
        model_state, optimizer_state = full_state(self._wrapped, self.optimizer)
        rng = capture_rng(ctx.device)
        rng_by_rank: list[dict[str, Tensor]] = [{} for _ in range(ctx.world_size)]
        for name in sorted(rng):
            for rank, tensor in enumerate(ctx.all_gather(rng[name])):
                rng_by_rank[rank][name] = tensor
        path = self.checkpoint_dir / checkpoint_name(self.step)
        if ctx.is_main:
            bad = [k for k, v in model_state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
            if bad:
                raise FloatingPointError(
                    f"Refusing to write {path}: non-finite weights in {', '.join(bad[:3])}. The previous checkpoints "
                    f"in {self.checkpoint_dir} are intact; resume from them with a lower train.lr."
                )
            tensors, skeleton = pack_training_state(optimizer_state, rng_by_rank)
            state = {
                "stage": self.stage,
                "step": self.step,
                "position": self.position,
                "world_size": ctx.world_size,
                "micro_batch": self.micro_batch,
                "bad_steps": self._bad_steps,
                "scheduler": self.scheduler.state_dict(),
                "optimizer": skeleton,
                "init_sources": self.init_sources,
                "train": cfg.to_dict(),
                "torch_version": torch.__version__,
            }
            write_checkpoint(path, save_model=self._model_saver(model_state), tensors=tensors, state=state)
            prune_checkpoints(self.checkpoint_dir, cfg.keep_last)
        ctx.barrier()
        return path

    def _save_final(self) -> None:
        assert self.ctx is not None
        if self.strategy == "fsdp":
            model_state, _ = full_state(self._wrapped, self.optimizer)
        else:
            model_state = {}
        if self.ctx.is_main:
            self._model_saver(model_state)(self.final_dir)
        self.ctx.barrier()
