"""``worldmodels eval``: every metric of the specification on a held-out split, as numbers and pictures.

:func:`evaluate` loads a world model (or takes one), draws clips from a held-out split
(:mod:`worldmodels.eval.held_out`) and measures

* tokenizer reconstruction: PSNR and SSIM per clip (mean, spread) and per frame position;
* controllability: the Genie paper's Delta_t PSNR for every ``t`` of the horizon (the paper
  reports ``t = 4``), with the spread over clips, and optionally the same for a recorded-action
  baseline on the same clips;
* latent actions: usage histogram and entropy; where the data has true actions, the NMI between
  latent and true actions next to the NMI of a random assignment with the same usage histogram,
  the latent x true contingency table (with the environment's action names) and probes
  (:mod:`worldmodels.eval.ground_truth`);
* predicted rewards and episode ends against the recorded ones, for models that predict them;
* codebook usage and perplexity of the tokenizer (over the held-out tokens) and of the LAM;
* FVD when local I3D weights are given, otherwise a statement that it was skipped and why;
* seconds spent per metric, and every setting needed to reproduce the numbers.

The result is an :class:`~worldmodels.eval.report.EvalReport`, written to ``out_dir`` when it is
given (``report.json``, ``report.md`` and the pictures of :mod:`worldmodels.eval.figures`).

Axis legend: ``N`` clips, ``T`` frames of a clip, ``C H W`` pixels, ``h w`` token grid,
``A`` latent actions, ``K`` true actions, ``S`` steps rolled per latent action in the figure.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from worldmodels._version import __version__
from worldmodels.checkpoint import FINAL_DIR
from worldmodels.eval.codebook import codebook_stats
from worldmodels.eval.controllability import ControllabilityResult, delta_psnr
from worldmodels.eval.figures import draw_curve, draw_frame_grid
from worldmodels.eval.fvd import I3D_INPUT_SIZE, FVDResult, compute_fvd
from worldmodels.eval.ground_truth import ground_truth_metrics, outcome_metrics
from worldmodels.eval.held_out import HeldOutClips, load_held_out_clips, spread_indices
from worldmodels.eval.image_metrics import psnr, ssim
from worldmodels.eval.report import (
    PAPER_T,
    EvalReport,
    controllability_summary,
    resolve_checkpoint,
    spread_summary,
    usage_dict,
)
from worldmodels.world_model import WorldModel

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["LATENT_FIGURE_PROMPTS", "evaluate"]

LATENT_FIGURE_PROMPTS = 3
"""Prompts each latent action is rolled from in ``latent_actions.png``."""


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _batches(video: Tensor, batch_size: int) -> Iterator[Tensor]:
    for i in range(0, video.shape[0], batch_size):
        yield video[i : i + batch_size]


def _load_model(
    model: WorldModel | str | os.PathLike[str],
    device: str | torch.device | None,
    model_overrides: Mapping[str, Any] | None,
) -> tuple[WorldModel, Path | None]:
    if isinstance(model, WorldModel):
        if model_overrides:
            raise ValueError(
                "model_overrides apply when loading a checkpoint; for a model object, change it before evaluating."
            )
        return (model.to(device) if device is not None else model), None
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"model must be a WorldModel or the path of a checkpoint or run directory, got {type(model).__name__}."
        )
    directory = resolve_checkpoint(model)
    loaded = WorldModel.from_pretrained(directory, device=device or "cpu", **dict(model_overrides or {}))
    return loaded, directory


def evaluate(
    model: WorldModel | str | os.PathLike[str],
    data: str | os.PathLike[str] | Any,
    *,
    split: str | None = "test",
    max_clips: int | None = 64,
    horizon: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    fvd_weights: str | os.PathLike[str] | None = None,
    fvd_size: int = I3D_INPUT_SIZE,
    out_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    figure_clips: int = 3,
    latent_steps: int = 4,
    probe_fit_fraction: float = 0.5,
    random_trials: int = 100,
    baseline: WorldModel | str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> EvalReport:
    """Run every evaluation metric on held-out clips and, with ``out_dir``, write the report.

    Clips have the model's ``num_frames`` and ``image_size``. With ``max_clips`` they are spread
    evenly over the split (every ``len / max_clips``-th clip), so they reach many episodes. The
    run is deterministic for a given ``seed`` (random actions, sampler generators, and torch's
    global generator inside the call, which is restored afterwards). The model is put in eval
    mode and its mode restored.

    Shapes:
        clips ``N T C H W`` float in ``[0, 1]`` with ``T = model.num_frames``; true actions
        ``N T-1`` (``-1`` unknown).

    Args:
        model: a :class:`~worldmodels.WorldModel`, a checkpoint directory, or a training run
            directory (see :func:`worldmodels.checkpoint.resolve_model_dir`).
        data: a directory of recorded shards or videos (read with
            :class:`~worldmodels.data.clips.ClipDataset`), or a data set whose items are dicts with
            ``video`` (``T C H W``) and optionally ``actions`` (``T-1``).
        split: the split of a recorded data set (``None``: every file); ignored for a data set object.
        max_clips: clips to evaluate (``None``: all).
        horizon: ``N``, frames generated per clip for Delta_t PSNR, ``1 <= N <= num_frames - 1``
            (default ``num_frames - 1``; the paper's ``t = 4`` needs ``N >= 4``).
        batch_size: clips per forward pass.
        seed: seed of everything random.
        fvd_weights: a local I3D state dict (``.safetensors`` / ``.pt``); ``None`` skips FVD.
        fvd_size: frame side fed to I3D (224 is the standard; smaller values are not comparable
            with published FVDs).
        out_dir: where to write the report (``None``: write nothing).
        device: where to run the model (default: CPU for a checkpoint, unchanged for a model).
        model_overrides: config overrides when loading a checkpoint, e.g.
            ``{"sampler": {"steps": 8}}`` for fewer MaskGIT iterations.
        figure_clips: clips shown in ``reconstruction.png``.
        latent_steps: steps each latent action is rolled in ``latent_actions.png`` (at most
            ``num_frames - 1``, the context the model was trained on).
        probe_fit_fraction: share of the clips the latent-action probe is fitted on.
        random_trials: shuffles of the random-assignment NMI baseline.
        baseline: a model conditioned on the recorded actions (``action_model="recorded"``; a model,
            checkpoint or run directory): its Delta_t PSNR and generated PSNR on the same clips
            are reported beside the evaluated model's (needs data with true actions).
        log: called with a line before each step (e.g. ``print``), for progress.

    Returns:
        The :class:`EvalReport` (also saved to ``out_dir`` when given).

    Raises:
        CheckpointError: when the checkpoint cannot be found or loaded.
        FileNotFoundError: when ``data`` or ``fvd_weights`` does not exist.
        ValueError: for an impossible horizon, unusable data, or bad settings.
    """
    say = log or (lambda _line: None)
    timings: dict[str, float] = {}
    total_start = time.perf_counter()
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if figure_clips < 1 or latent_steps < 1:
        raise ValueError(f"figure_clips and latent_steps must be at least 1, got {figure_clips} and {latent_steps}.")
    if fvd_weights is not None and str(fvd_weights).strip() and not Path(fvd_weights).is_file():
        raise FileNotFoundError(
            f"I3D weights {fvd_weights} do not exist. Pass the path of a local Kinetics-400 I3D state dict "
            "(.safetensors or .pt), or leave the FVD weights out to skip FVD."
        )

    with _timed(timings, "load_model"):
        wm, checkpoint_dir = _load_model(model, device, model_overrides)
    num_frames = wm.num_frames
    if num_frames < 2:
        raise ValueError(f"The model works on clips of {num_frames} frame(s); evaluation needs at least 2.")
    horizon = num_frames - 1 if horizon is None else int(horizon)
    if not 1 <= horizon <= num_frames - 1:
        raise ValueError(
            f"horizon={horizon} is not possible for this model: it generates from one real frame and its action "
            f"model sees horizon + 1 frames, at most its num_frames={num_frames}. Pass 1 <= horizon <= "
            f"{num_frames - 1}."
        )
    notes: list[str] = []
    if checkpoint_dir is not None and checkpoint_dir.name == FINAL_DIR and checkpoint_dir.parent.name != "dynamics":
        notes.append(
            f"the model comes from {checkpoint_dir} (stage {checkpoint_dir.parent.name!r}), not from a finished "
            "dynamics stage: parts trained in later stages are untrained, so Delta_t PSNR and the latent-action "
            "numbers may measure random weights."
        )
    if horizon < PAPER_T:
        notes.append(f"horizon {horizon} < {PAPER_T}: the paper's Delta_t PSNR at t={PAPER_T} is not measured.")

    say(f"loading clips from {data}")
    with _timed(timings, "load_data"):
        clips = load_held_out_clips(data, wm, split, max_clips)
    run_device = wm.device
    n = clips.video.shape[0]
    with _measuring(wm, seed):
        report = _measure(
            wm, clips, horizon=horizon, batch_size=batch_size, seed=seed, fvd_weights=fvd_weights,
            fvd_size=fvd_size, device=run_device, figure_clips=figure_clips, latent_steps=latent_steps,
            probe_fit_fraction=probe_fit_fraction, random_trials=random_trials, timings=timings, say=say,
        )
    if baseline is not None:
        known = (clips.actions[:, :horizon] >= 0).all(dim=1)
        if bool((clips.actions >= 0).any()) and not bool(known.any()):
            notes.append(
                f"the recorded-action baseline was not measured: none of the {n} clips has all {horizon} of its "
                "actions known (with a frame_skip, a transition's action is unknown where its frames' actions "
                "differ); evaluate more clips or a shorter horizon."
            )
        else:
            say("baseline: Delta_t PSNR of the recorded-action model on the same clips")
            with _timed(timings, "baseline"):
                report.baseline = _evaluate_baseline(baseline, clips, device, model_overrides, horizon, batch_size,
                                                     seed)

    report.notes = notes + report.notes
    report.settings = {
        "checkpoint": str(checkpoint_dir) if checkpoint_dir is not None else None,
        "checkpoint_source": str(model) if checkpoint_dir is not None else None,
        "model_name": wm.name,
        "model": {
            "image_size": list(wm.image_size),
            "in_channels": wm.in_channels,
            "num_frames": wm.num_frames,
            "frame_skip": wm.frame_skip,
            "num_actions": wm.num_actions,
            "tokenizer_vocab_size": None if wm.tokenizer.continuous else int(wm.tokenizer.vocab_size or 0),
            "tokenizer_latent_dim": wm.tokenizer.latent_dim if wm.tokenizer.continuous else None,
            "token_grid": list(wm.token_grid),
            "components": {k: getattr(wm, k).get_config().get("name") for k in
                           ("tokenizer", "action_model", "dynamics", "sampler")},
            "sampler": wm.sampler.get_config(),
        },
        "model_overrides": dict(model_overrides or {}),
        "data": clips.description,
        "split": split if isinstance(data, (str, os.PathLike)) else None,
        "dataset_clips": clips.dataset_size,
        "num_clips": n,
        "clip_indices": clips.indices,
        "clip_frames": num_frames,
        "horizon": horizon,
        "max_clips": max_clips,
        "batch_size": batch_size,
        "seed": seed,
        "device": str(run_device),
        "fvd_weights": str(fvd_weights) if fvd_weights else None,
        "fvd_size": fvd_size,
        "figure_clips": figure_clips,
        "latent_steps": latent_steps,
        "probe_fit_fraction": probe_fit_fraction,
        "random_trials": random_trials,
        "worldmodels_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    report.timings["total"] = time.perf_counter() - total_start
    if out_dir is not None:
        say(f"writing the report to {out_dir}")
        report.save(out_dir)
    return report


def _evaluate_baseline(
    baseline: WorldModel | str | os.PathLike[str],
    clips: HeldOutClips,
    device: str | torch.device | None,
    model_overrides: Mapping[str, Any] | None,
    horizon: int,
    batch_size: int,
    seed: int,
) -> dict[str, Any]:
    """Delta_t PSNR of a recorded-action model on the clips whose true actions are all known."""
    base, checkpoint_dir = _load_model(baseline, device, model_overrides)
    if not getattr(base.action_model, "uses_recorded_actions", False):
        raise ValueError(
            f"The baseline {baseline} infers its actions ({type(base.action_model).__name__}); a baseline is a "
            "model conditioned on the recorded actions (action_model=recorded)."
        )
    known = (clips.actions[:, :horizon] >= 0).all(dim=1)
    if not bool(known.any()):
        raise ValueError("The baseline needs clips with recorded actions; this data has none.")
    video, actions = clips.video[known], clips.actions[known]
    with _measuring(base, seed):
        batches = [{"video": v, "actions": a} for v, a in zip(_batches(video, batch_size), _batches(actions, batch_size))]
        control = delta_psnr(base, batches, horizon=horizon, seed=seed)
    return {
        "checkpoint": str(checkpoint_dir) if checkpoint_dir is not None else None,
        "model_name": base.name,
        "num_clips": int(known.sum()),
        "controllability": controllability_summary(control),
    }


@contextmanager
def _measuring(wm: WorldModel, seed: int) -> Iterator[None]:
    """Eval mode, no gradients and torch's global RNG seeded with ``seed`` on the model's device; the
    caller's RNG state and the model's mode come back afterwards."""
    device = wm.device
    was_training = wm.training
    wm.eval()
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []), torch.no_grad():
            torch.manual_seed(seed)
            yield
    finally:
        wm.train(was_training)


def _measure(
    wm: WorldModel,
    clips: HeldOutClips,
    *,
    horizon: int,
    batch_size: int,
    seed: int,
    fvd_weights: str | os.PathLike[str] | None,
    fvd_size: int,
    device: torch.device,
    figure_clips: int,
    latent_steps: int,
    probe_fit_fraction: float,
    random_trials: int,
    timings: dict[str, float],
    say: Callable[[str], None],
) -> EvalReport:
    video_NTCHW = clips.video
    n, t = video_NTCHW.shape[:2]
    h, w = video_NTCHW.shape[-2:]

    # Reconstruction and the tokenizer's codebook.
    say(f"reconstruction: encoding and decoding {n} clips")
    with _timed(timings, "reconstruction"):
        psnr_NT, ssim_NT, tokens = [], [], []
        window = 11 if min(h, w) >= 11 else max(1, min(h, w) - (1 - min(h, w) % 2))
        for batch in _batches(video_NTCHW, batch_size):
            batch = batch.to(device)
            tokens_BThw = wm.encode(batch)
            recon = wm.decode(tokens_BThw)
            psnr_NT.append(psnr(batch, recon, reduction="none").cpu())
            ssim_NT.append(ssim(batch, recon, reduction="none", window_size=window).cpu())
            tokens.append(tokens_BThw.cpu())
        psnr_NT_all, ssim_NT_all = torch.cat(psnr_NT).double(), torch.cat(ssim_NT).double()
        tokens_all = torch.cat(tokens)
        reconstruction = {
            "psnr": spread_summary(psnr_NT_all.mean(dim=1)),
            "ssim": spread_summary(ssim_NT_all.mean(dim=1)),
            "psnr_per_frame": psnr_NT_all.mean(dim=0).tolist(),
            "ssim_per_frame": ssim_NT_all.mean(dim=0).tolist(),
            "per_clip": {"psnr": psnr_NT_all.mean(dim=1).tolist(), "ssim": ssim_NT_all.mean(dim=1).tolist()},
            "ssim_window": window,
            "num_frames": t,
        }
        # a continuous tokenizer has no codebook to count
        tokenizer_stats = None if wm.tokenizer.continuous else codebook_stats(tokens_all, int(wm.tokenizer.vocab_size or 0))

    # Latent actions: usage, and agreement with the true actions where the data has them.
    say(f"latent actions: inferring {n * (t - 1)} transitions")
    with _timed(timings, "latent_actions"):
        recorded = bool(getattr(wm.action_model, "uses_recorded_actions", False))
        latent, vectors = [], []
        for video_b, actions_b in zip(_batches(video_NTCHW, batch_size), _batches(clips.actions, batch_size)):
            given = actions_b.to(device) if recorded else None
            latent.append(wm.infer_actions(video_b.to(device), given).long().cpu())
            vectors.append(wm.action_model.latent_vectors(video_b.to(device), given).float().cpu())
        latent_NT, vectors_NTD = torch.cat(latent), torch.cat(vectors)
        lam_stats = codebook_stats(latent_NT, wm.num_actions)
        latent_actions = {
            "num_actions": wm.num_actions,
            "num_transitions": int(latent_NT.numel()),
            "usage": usage_dict(lam_stats),
            "ground_truth": ground_truth_metrics(
                latent_NT,
                clips.actions,
                wm.num_actions,
                clips.num_true_actions,
                action_names=clips.action_names,
                action_groups=clips.action_groups,
                vectors=vectors_NTD,
                fit_fraction=probe_fit_fraction,
                random_trials=random_trials,
                seed=seed,
            ),
        }

    # Controllability.
    say(f"Delta_t PSNR: generating {horizon} frames per clip with inferred and with random actions")
    with _timed(timings, "delta_psnr"):
        batches = [{"video": v, "actions": a} for v, a in zip(_batches(video_NTCHW, batch_size),
                                                              _batches(clips.actions, batch_size))]
        control = delta_psnr(wm, batches, horizon=horizon, seed=seed)

    # Rewards and episode ends, where the model predicts them.
    with _timed(timings, "outcomes"):
        outcomes = outcome_metrics(wm, clips, batch_size=batch_size, device=device)

    # FVD of generations with the inferred actions against the real clips.
    notes: list[str] = []
    with _timed(timings, "fvd"):
        if not fvd_weights or not str(fvd_weights).strip():
            fvd_result = compute_fvd(video_NTCHW, video_NTCHW, None, size=fvd_size)
            fvd_result.reason = f"{fvd_result.reason} (command line: worldmodels eval ... --fvd-weights PATH)"
        elif n < 2:
            fvd_result = FVDResult(value=None, skipped=True, reason="FVD needs at least 2 clips", size=fvd_size)
        else:
            say(f"FVD: generating {n} clips and extracting I3D features")
            real = video_NTCHW[:, : horizon + 1]
            fake = torch.cat([
                _generate_inferred(wm, b.to(device), horizon, seed + 1 + i, a).cpu()
                for i, (b, a) in enumerate(zip(_batches(real, batch_size), _batches(clips.actions, batch_size)))
            ])
            fvd_result = compute_fvd(real, fake, fvd_weights, size=fvd_size, device=device)
            if n < 100:
                notes.append(
                    f"FVD from {n} clips is biased upwards and noisy; compare only with FVDs computed on as many clips."
                )

    say("drawing the pictures")
    with _timed(timings, "figures"):
        figures, layouts = _figures(wm, clips, latent_NT, latent_actions, control, horizon=horizon, seed=seed,
                                    device=device, figure_clips=figure_clips, latent_steps=latent_steps)

    return EvalReport(
        settings={},
        reconstruction=reconstruction,
        controllability=control,
        latent_actions=latent_actions,
        codebooks={"tokenizer": tokenizer_stats, "lam": lam_stats},
        fvd=fvd_result,
        timings=timings,
        notes=notes,
        figures=figures,
        figure_layouts=layouts,
        outcomes=outcomes,
    )


def _recorded_or_none(wm: WorldModel, actions: Tensor, horizon: int, device: torch.device) -> Tensor | None:
    """The recorded actions of the first ``horizon`` transitions, for a model conditioned on them."""
    if not getattr(wm.action_model, "uses_recorded_actions", False):
        return None
    return actions[:, :horizon].to(device)


def _generate_inferred(
    wm: WorldModel, video_BTCHW: Tensor, horizon: int, seed: int, actions_BT: Tensor | None = None
) -> Tensor:
    """Generate ``horizon`` frames from the first frame with the actions inferred from the real clip.

    Shapes:
        ``B T C H W`` (recorded actions ``B T-1``) -> ``B (1 + horizon) C H W``.
    """
    clip = video_BTCHW[:, : horizon + 1]
    given = None if actions_BT is None else _recorded_or_none(wm, actions_BT, horizon, clip.device)
    actions_BN = wm.infer_actions(clip, given).long()
    generator = torch.Generator(device=clip.device).manual_seed(seed)
    return wm.generate(clip[:, 0], actions_BN, generator=generator)


def _figures(
    wm: WorldModel,
    clips: HeldOutClips,
    latent_NT: Tensor,
    latent_actions: dict[str, Any],
    control: ControllabilityResult,
    *,
    horizon: int,
    seed: int,
    device: torch.device,
    figure_clips: int,
    latent_steps: int,
) -> tuple[dict[str, PILImage], dict[str, dict[str, Any]]]:
    figures: dict[str, PILImage] = {}
    layouts: dict[str, dict[str, Any]] = {}
    video = clips.video
    p = min(figure_clips, video.shape[0])

    # real / reconstructed / generated over time, three rows per clip.
    shown = video[:p, : horizon + 1].to(device)
    recon = wm.decode(wm.encode(video[:p].to(device)))[:, : horizon + 1]
    actions_PN = wm.infer_actions(shown, _recorded_or_none(wm, clips.actions[:p], horizon, device)).long()
    generated = wm.generate(shown[:, 0], actions_PN, generator=torch.Generator(device=device).manual_seed(seed + 1))
    rows, labels = [], []
    for i in range(p):
        rows += [shown[i], recon[i], generated[i]]
        acts = " ".join(str(a) for a in actions_PN[i].tolist())
        labels += [f"clip {clips.indices[i]}\nreal", "reconstructed", f"generated\nactions {acts}"]
    col_labels = [f"t={k}" for k in range(horizon + 1)]
    image, layout = draw_frame_grid(
        torch.stack(rows).cpu(),
        row_labels=labels,
        col_labels=col_labels,
        title="Per clip: real frames / tokenizer reconstruction / generated from the real frame 0\n"
        "with the latent actions inferred from the real clip",
        group_rows=3,
    )
    figures["reconstruction.png"], layouts["reconstruction.png"] = image, layout.to_dict()

    # Every latent action rolled from the same prompt frames (the paper's consistency figure): one
    # row per action, one group of columns per prompt, so a consistent action moves alike in each group.
    a = wm.num_actions
    steps = min(latent_steps, max(1, wm.num_frames - 1))
    picks = spread_indices(video.shape[0], min(LATENT_FIGURE_PROMPTS, video.shape[0]))
    groups = []
    for i, clip in enumerate(picks):
        prompt_ACHW = video[clip : clip + 1, 0].to(device).expand(a, -1, -1, -1)
        actions_AS = torch.arange(a, device=device)[:, None].expand(a, steps)
        generator = torch.Generator(device=device).manual_seed(seed + 2 + i)
        groups.append(wm.generate(prompt_ACHW, actions_AS, generator=generator))
    rolled = torch.cat(groups, dim=1)  # A (P (1 + steps)) C H W
    fractions = latent_actions["usage"]["fraction"]
    truth = latent_actions["ground_truth"]
    source = (truth.get("collapsed") or truth) if truth.get("available") else None
    row_labels = []
    for k in range(a):
        label = f"action {k}\n{100 * fractions[k]:.0f}% of use"
        if source is not None:
            row = source["contingency_table"][k]
            if sum(row):
                top = max(range(len(row)), key=row.__getitem__)
                label += f"\nmostly {source['action_names'][top]} ({100 * row[top] / sum(row):.0f}%)"
        row_labels.append(label)
    image, layout = draw_frame_grid(
        rolled.cpu(),
        row_labels=row_labels,
        col_labels=[label for i in picks for label in [f"clip {clips.indices[i]}", *(f"+{k}" for k in range(1, steps + 1))]],
        title=f"Each latent action repeated {steps} times from the same {len(picks)} prompts (frame 0 of each clip);\n"
        "a consistent action moves the player the same way in every group of columns",
    )
    figures["latent_actions.png"], layouts["latent_actions.png"] = image, layout.to_dict()

    # Delta_t PSNR over t with one standard deviation over clips.
    t_values = list(range(1, control.horizon + 1))
    mean = control.delta_psnr_t.tolist()
    std = control.delta_psnr_std_t.tolist()
    image = draw_curve(
        t_values,
        mean,
        band_low=[m - s for m, s in zip(mean, std)],
        band_high=[m + s for m, s in zip(mean, std)],
        title="Controllability: Delta_t PSNR = PSNR(x_t, x^_t) - PSNR(x_t, x^'_t)",
        xlabel="t (generated frame)",
        ylabel="Delta_t PSNR (dB)",
        legend=f"mean over {control.num_clips} clips; band: +/- 1 std",
        mark_x=PAPER_T if control.horizon >= PAPER_T else None,
        mark_label=f"t={PAPER_T} (paper)",
    )
    figures["delta_psnr.png"] = image
    layouts["delta_psnr.png"] = {"size": list(image.size), "points": len(t_values)}
    return figures, layouts
