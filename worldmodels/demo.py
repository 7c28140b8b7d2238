"""The end-to-end demo: record a data set, train every stage, evaluate, play; resumable.

``worldmodels demo`` (and ``bash scripts/demo.sh``) runs :func:`run_demo` with a recipe
(default ``coinrun-cpu`` from the Genie plug-in). Everything goes to one folder::

    OUT/data/            the recorded data set (uint8 shards + manifest.json; train/val/test levels)
    OUT/run/             the training run (RUN/tokenizer, RUN/lam, RUN/dynamics, the stages of the recipe's
                         train.all_stages: checkpoints, logs, final models)
    OUT/baseline/        the recorded-action baseline: the same model conditioned on the true actions
                         (its dynamics trained on the run's tokenizer), reported beside the latent one
    OUT/token_cache/     the training clips' tokens, encoded once by the trained tokenizer (both dynamics use them)
    OUT/eval/            report.json, report.md and the pictures of `worldmodels eval`
    OUT/play.gif         a played rollout: each latent action held in turn, from a held-out prompt
    OUT/latent_actions.gif  one row per latent action, all from the same prompt
    OUT/summary.json     the headline numbers and where everything is

Each step is skipped when its result is already complete, and training resumes from its last
checkpoint, so running the demo again after an interruption continues where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

DEFAULT_RECIPE = "coinrun-cpu"
"""The recipe the demo runs unless told otherwise (contributed by the Genie plug-in)."""


@dataclass
class DemoResult:
    """Where the demo put its results, and the headline numbers.

    Attributes:
        out: the output folder.
        data: the recorded data set.
        model: the final trained model (a ``WorldModel.from_pretrained`` directory).
        report: the evaluation's ``report.md``.
        play: the played GIF.
        latent_actions: the per-latent-action GIF.
        headline: the evaluation's headline numbers.
        seconds: wall-clock seconds of each step.
    """

    out: Path
    data: Path
    model: Path
    report: Path
    play: Path
    latent_actions: Path
    headline: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def _log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def compose_demo_config(out: str | os.PathLike[str], overrides: Sequence[str] = (), recipe: str = DEFAULT_RECIPE) -> Any:
    """The demo's composed config: the recipe, the output folder's paths, then ``overrides``."""
    from worldmodels.config import compose

    out = Path(out).resolve()
    base = [f"recipe={recipe}", f"data.path={out / 'data'}", f"train.run_dir={out / 'run'}",
            f"train.token_cache_dir={out / 'token_cache'}"]
    return compose([*base, *overrides])


def _data_complete(directory: Path) -> bool:
    manifest = directory / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        return bool(json.loads(manifest.read_text()).get("complete"))
    except (OSError, json.JSONDecodeError):
        return False


def _recording_differences(manifest: dict[str, Any], rec: Any) -> list[str]:
    """What a finished recording's manifest says that the recipe's ``demo.record`` does not."""
    from worldmodels.build_config import to_container

    env = manifest.get("env") or {}
    recorded: dict[str, Any] = {
        "policy": (manifest.get("policy") or {}).get("name"), "frames_per_episode": manifest.get("frames_per_episode"),
        "seed": manifest.get("seed"), "episodes": (manifest.get("counts") or {}).get("episodes"),
    }  # fmt: skip
    differences = [f"{key}={recorded[key]!r} (the recipe asks {rec.get(key)!r})" for key in recorded
                   if rec.get(key) is not None and recorded[key] is not None and recorded[key] != rec.get(key)]
    options = {**(env.get("options") or {}), "action_repeat": env.get("action_repeat", 1)}
    for key, value in dict(to_container(rec.get("options") or {})).items():
        if key in options and options[key] != value:
            differences.append(f"{key}={options[key]!r} (the recipe asks {value!r})")
    return differences


def _record(cfg: Any, data_dir: Path) -> None:
    from worldmodels.build_config import ConfigError, to_container
    from worldmodels.data.recorders import parse_splits, record

    rec = cfg.demo.record
    if _data_complete(data_dir):
        differences = _recording_differences(json.loads((data_dir / "manifest.json").read_text()), rec)
        if differences:
            raise ConfigError(
                f"{data_dir} was recorded with {', '.join(differences)}: training on it would not be the demo "
                f"this recipe describes. Delete {data_dir.parent} (or its data and run folders), or pass another "
                "--out, and run the demo again."
            )
        _log(f"data: {data_dir} is complete, reusing it")
        return
    if not rec.get("env"):
        raise ConfigError(
            "The demo records its data but no environment is set: demo.record.env is null. Choose a recipe that "
            "sets it (e.g. --recipe coinrun-cpu; `worldmodels list --kind recipe` shows them) or set "
            "demo.record.env=coinrun (a recorder name: coinrun, procgen:GAME, gym:ENV_ID)."
        )
    _log(f"data: recording {rec.episodes} {rec.env} episodes of up to {rec.frames_per_episode} frames "
         f"({rec.policy} policy) into {data_dir}")
    size = cfg.model.image_size
    options = dict(to_container(rec.get("options") or {}))
    result = record(
        str(rec.env), data_dir, env_options=options, episodes=int(rec.episodes),
        frames_per_episode=int(rec.frames_per_episode),
        policy=str(rec.policy), image_size=size if isinstance(size, int) else tuple(size),
        splits=parse_splits(str(rec.splits)), seed=int(rec.seed), overwrite=True, progress=True,
    )
    counts = result.manifest["counts"]
    _log(f"data: {counts['frames']} frames in {result.seconds:.1f} s")


def _train(cfg: Any) -> Path:
    from worldmodels.training import train
    from worldmodels.training.config import configs_from

    run_dir = Path(cfg.train.run_dir)
    resume = run_dir.exists() and any(run_dir.iterdir())
    if resume:
        _log(f"train: resuming the run in {run_dir}")
        from omegaconf import OmegaConf

        cfg = OmegaConf.merge(cfg, {"train": {"resume": True}})
    stage = configs_from(cfg)[0].stage
    _log(f"train: stage {stage} of {cfg.model.name} into {run_dir}")
    result = train(cfg)
    return Path(result.final_dir)


def _baseline_enabled(cfg: Any) -> bool:
    baseline = cfg.demo.get("baseline")
    return bool(baseline is not None and baseline.get("enabled", False))


def _train_baseline(cfg: Any, out: Path, data_dir: Path) -> Path:
    """Train the dynamics of the same model conditioned on the recorded actions, on the run's tokenizer."""
    from omegaconf import OmegaConf

    from worldmodels.build_config import flatten_composed_config, to_container
    from worldmodels.data.clips import ClipDataset
    from worldmodels.training import train

    base_cfg = cfg.demo.baseline
    num_actions = ClipDataset(data_dir, num_frames=2, split=str(cfg.data.split)).num_actions
    if not num_actions:
        raise ValueError(f"The recorded-action baseline needs a data set with true actions; {data_dir} has none.")
    spec = flatten_composed_config(to_container(cfg))
    spec["action_model"] = {"name": "recorded", "num_actions": int(num_actions)}
    spec["name"] = f"{spec.get('name') or 'model'}-recorded-actions"
    run_dir = out / "baseline"
    tokenizer = Path(cfg.train.run_dir) / "tokenizer" / "final"
    overrides = {
        "stage": "dynamics", "run_dir": str(run_dir), "init_from": str(tokenizer), "init_components": ["tokenizer"],
        "resume": bool(run_dir.exists() and any(run_dir.iterdir())),
        "per_stage": {"dynamics": {"steps": int(base_cfg.steps)}},
    }  # fmt: skip
    train_cfg = OmegaConf.merge(cfg, {"train": overrides})
    _log(f"baseline: dynamics of {spec['name']} ({num_actions} recorded actions), {int(base_cfg.steps)} steps "
         f"into {run_dir}")
    return Path(train(cast(Any, train_cfg), model=spec).final_dir)


def _evaluate(
    cfg: Any, model_dir: Path, data_dir: Path, eval_dir: Path, baseline_dir: Path | None = None
) -> dict[str, Any]:
    from worldmodels.eval.evaluation import evaluate

    report_json = eval_dir / "report.json"
    weights = [model_dir / "model.safetensors"] + ([baseline_dir / "model.safetensors"] if baseline_dir else [])
    if report_json.is_file() and all(w.is_file() and report_json.stat().st_mtime > w.stat().st_mtime for w in weights):
        _log(f"eval: {report_json} is newer than the model, reusing it")
        return json.loads(report_json.read_text())["headline"]
    ev = cfg.demo.eval
    overrides = {"sampler": {"steps": int(ev.sampler_steps)}} if ev.get("sampler_steps") else None
    _log(f"eval: {ev.max_clips} held-out clips of the {ev.split} split")
    report = evaluate(
        model_dir, data_dir, split=str(ev.split), max_clips=int(ev.max_clips),
        horizon=None if ev.get("horizon") is None else int(ev.horizon), out_dir=eval_dir,
        model_overrides=overrides, baseline=baseline_dir, log=lambda m: _log(f"eval: {m}"),
    )
    print(report.summary(), flush=True)
    return report.headline()


def _held_out_prompt(data_dir: Path, split: str, num_frames: int) -> torch.Tensor:
    from worldmodels.data.clips import ClipDataset

    clips = ClipDataset(data_dir, num_frames=num_frames, split=split)
    return clips[len(clips) // 2]["video"][0]  # C H W, from the middle of the split


def _play(cfg: Any, model_dir: Path, data_dir: Path, out: Path) -> tuple[Path, Path]:
    from worldmodels.envs import WorldModelEnv
    from worldmodels.play.export import save_generation
    from worldmodels.play.headless import play_headless
    from worldmodels.world_model import WorldModel

    model = WorldModel.from_pretrained(model_dir).eval()
    prompt = _held_out_prompt(data_dir, str(cfg.demo.eval.split), 2)
    hold = int(cfg.demo.play.actions_per_latent)
    actions = [a for a in range(model.num_actions) for _ in range(hold)]
    env = WorldModelEnv(model, prompt=prompt)
    play_path = play_headless(env, actions, out / "play.gif", seed=0, fps=8, scale=2)
    _log(f"play: {len(actions)} frames, each latent action held {hold} frames -> {play_path}")
    rows = torch.arange(model.num_actions)[:, None].expand(-1, model.num_frames - 1)
    with torch.no_grad():
        video = model.generate(prompt[None].expand(model.num_actions, -1, -1, -1), rows.contiguous(),
                               generator=torch.Generator().manual_seed(0))
    grid_path = save_generation(video, out / "latent_actions.gif", fps=4, nrow=1, scale=2)
    _log(f"play: one row per latent action from the same prompt -> {grid_path}")
    return play_path, grid_path


def run_demo(
    out: str | os.PathLike[str] = "demo_out",
    overrides: Sequence[str] = (),
    *,
    recipe: str = DEFAULT_RECIPE,
) -> DemoResult:
    """Record, train, evaluate and play, into ``out``; resumes after an interruption.

    Args:
        out: the output folder.
        overrides: config overrides (``train.per_stage.dynamics.steps=100``, ``demo.record.episodes=20``).
        recipe: the training recipe.

    Returns:
        :class:`DemoResult` with every path and the headline numbers.
    """
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg = compose_demo_config(out, overrides, recipe)
    data_dir, eval_dir = out / "data", out / "eval"
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    _record(cfg, data_dir)
    seconds["record"] = time.perf_counter() - start

    start = time.perf_counter()
    model_dir = _train(cfg)
    seconds["train"] = time.perf_counter() - start

    baseline_dir = None
    if _baseline_enabled(cfg):
        start = time.perf_counter()
        baseline_dir = _train_baseline(cfg, out, data_dir)
        seconds["baseline"] = time.perf_counter() - start

    start = time.perf_counter()
    headline = _evaluate(cfg, model_dir, data_dir, eval_dir, baseline_dir)
    seconds["eval"] = time.perf_counter() - start

    start = time.perf_counter()
    play_path, grid_path = _play(cfg, model_dir, data_dir, out)
    seconds["play"] = time.perf_counter() - start

    result = DemoResult(out, data_dir, model_dir, eval_dir / "report.md", play_path, grid_path, headline, seconds)
    summary = {
        "recipe": recipe, "overrides": list(overrides), "data": str(data_dir), "model": str(model_dir),
        "report": str(result.report), "play": str(play_path), "latent_actions": str(grid_path),
        "baseline": str(baseline_dir) if baseline_dir else None,
        "headline": headline, "seconds": seconds,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return result
