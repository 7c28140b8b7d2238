"""Latent actions and predicted outcomes against the data's ground truth.

* :func:`ground_truth_metrics`: latent actions against the recorded true actions (NMI next to a
  random assignment with the same usage histogram, contingency table, majority probe,
  few-label mapping, linear probe; on raw and on collapsed action groups).
* :func:`outcome_metrics`: predicted rewards and episode ends against the recorded ones, one
  step ahead from the real frames.

Axis legend: ``N`` clips, ``T`` frames of a clip, ``A`` latent actions, ``K`` true actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from worldmodels.eval.held_out import HeldOutClips
from worldmodels.eval.latent_actions import (
    collapse_actions,
    contingency_table,
    few_label_accuracy,
    linear_probe,
    nmi_from_table,
    probe_accuracy,
)
from worldmodels.world_model import WorldModel

__all__ = ["ground_truth_metrics", "outcome_metrics", "random_nmi_baseline"]


def random_nmi_baseline(
    latent: Tensor, true: Tensor, num_latent: int, num_true: int, *, trials: int = 100, seed: int = 0
) -> dict[str, Any]:
    """NMI of random assignments of latent actions with the same usage histogram as ``latent``.

    Each trial shuffles the latent actions over the transitions, which keeps both histograms and
    destroys any relation to the true actions. With finitely many transitions such chance NMIs
    are above 0; a latent action model is informative only where its NMI clearly exceeds them.

    Shapes:
        ``latent, true``: ``M`` (labelled transitions, flat) -> scalars.

    Args:
        latent: latent actions in ``[0, num_latent)``.
        true: true actions in ``[0, num_true)``.
        num_latent: ``A``.
        num_true: ``K``.
        trials: number of shuffles.
        seed: seed of the shuffles.

    Returns:
        ``{"mean", "std", "max", "trials"}`` of the chance NMIs, and ``p_value``: the share of
        shuffles (counting the observed assignment as one) whose NMI reaches the observed NMI.
    """
    if trials < 1:
        raise ValueError(f"random_nmi_baseline needs at least 1 trial, got {trials}.")
    latent_M = latent.reshape(-1).cpu().long()
    true_M = true.reshape(-1).cpu().long()
    observed = nmi_from_table(contingency_table(latent_M, true_M, num_latent, num_true))
    generator = torch.Generator().manual_seed(seed)
    values = torch.tensor(
        [
            nmi_from_table(contingency_table(latent_M[torch.randperm(len(latent_M), generator=generator)], true_M,
                                             num_latent, num_true))
            for _ in range(trials)
        ],
        dtype=torch.float64,
    )
    return {
        "mean": float(values.mean()),
        "std": float(values.std(correction=1)) if trials > 1 else None,
        "max": float(values.max()),
        "trials": trials,
        "p_value": float((1 + (values >= observed - 1e-12).sum()) / (1 + trials)),
    }


def ground_truth_metrics(
    latent: Tensor,
    true: Tensor,
    num_latent: int,
    num_true: int | None = None,
    *,
    action_names: Sequence[str] | None = None,
    action_groups: Mapping[str, Sequence[int]] | None = None,
    vectors: Tensor | None = None,
    fit_fraction: float = 0.5,
    random_trials: int = 100,
    few_label_counts: Sequence[int | None] = (10, 50, 200, None),
    few_label_draws: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Latent actions against true actions, on the transitions whose true action is known.

    Unlike :func:`~worldmodels.eval.latent_actions.latent_action_metrics` this accepts unknown
    true actions (``-1``, e.g. across a ``frame_skip`` that spans several actions) and leaves
    those transitions out. Every probe is fitted on the first ``fit_fraction`` of the clips and
    scored on the rest (so the transitions of one clip stay on one side).

    Shapes:
        ``latent, true``: ``N T-1`` int64 (``true`` ``-1`` where unknown); ``vectors``:
        ``N T-1 D`` float (the continuous latents, for the linear probe).

    Args:
        latent: inferred latent actions.
        true: true actions of the same transitions.
        num_latent: ``A``.
        num_true: ``K`` (default: the number of ``action_names``, else the largest true action + 1).
        action_names: names of the ``K`` true actions (default: their indices).
        action_groups: visible groups of the true actions, name -> raw actions (CoinRun:
            ``left``, ``right``, ``jump``, ``stay``); every metric is repeated on them under ``collapsed``.
        vectors: continuous latent vectors of the transitions; adds the linear probe.
        fit_fraction: share of the clips the probes are fitted on, in ``(0, 1)``.
        random_trials: shuffles of the random-assignment NMI baseline.
        few_label_counts: ``K`` values of the few-label mapping (``None``: every fit transition).
        few_label_draws: random draws of the ``K`` labelled transitions per ``K``.
        seed: seed of the shuffles and draws.

    Returns:
        A JSON-ready dict. ``available`` is ``False`` (with a ``reason``) when no transition has a
        true action; otherwise it holds ``nmi``, ``nmi_random`` (:func:`random_nmi_baseline`),
        ``contingency_table`` (``A x K``, rows latent actions, columns true actions),
        ``action_names``, ``num_labelled_transitions``, ``probe`` (the majority mapping fitted on
        all fit clips: accuracy, chance accuracy, the latent -> true mapping, how often each latent
        action occurred in the fit clips; or ``available: False`` with a reason), ``few_label``
        (:func:`~worldmodels.eval.latent_actions.few_label_accuracy`), ``linear_probe``
        (with ``vectors``; :func:`~worldmodels.eval.latent_actions.linear_probe`) and, with
        ``action_groups``, ``collapsed``: the same on the groups.

    Raises:
        ValueError: for mismatched shapes, or true actions outside ``[0, num_true)``.
    """
    if latent.shape != true.shape or latent.ndim != 2:
        raise ValueError(
            f"latent and true actions must both be shaped N T-1, got {tuple(latent.shape)} and {tuple(true.shape)}."
        )
    if vectors is not None and tuple(vectors.shape[:2]) != tuple(latent.shape):
        raise ValueError(f"vectors must be shaped N T-1 D like the actions, got {tuple(vectors.shape)}.")
    latent = latent.cpu().long()
    true = true.cpu().long()
    known = true >= 0
    if not bool(known.any()):
        return {
            "available": False,
            "reason": "the data has no true actions (video files, or a recording without actions), so NMI, the "
            "contingency table and the probes cannot be measured",
        }
    largest = int(true[known].max())
    if num_true is None:
        num_true = len(action_names) if action_names is not None else largest + 1
    if largest >= num_true:
        raise ValueError(
            f"The data's true actions reach {largest}, but it declares {num_true} actions (valid 0..{num_true - 1}); "
            "the manifest's env.num_actions or env.action_names is wrong, or the shards belong to another "
            "environment."
        )
    names = [str(n) for n in action_names] if action_names is not None else [str(k) for k in range(num_true)]
    if len(names) != num_true:
        raise ValueError(f"Got {len(names)} action names for {num_true} true actions.")
    if not 0.0 < fit_fraction < 1.0:
        raise ValueError(f"fit_fraction must lie strictly between 0 and 1, got {fit_fraction}.")
    settings: dict[str, Any] = dict(vectors=vectors, fit_fraction=fit_fraction, random_trials=random_trials,
                    few_label_counts=few_label_counts, few_label_draws=few_label_draws, seed=seed)
    out = {"available": True, "num_true_actions": num_true,
           **_label_metrics(latent, true, num_latent, num_true, names, **settings)}
    if action_groups:
        group_names = list(action_groups)
        collapsed = collapse_actions(true, [list(action_groups[g]) for g in group_names])
        out["collapsed"] = {
            "groups": {g: [names[int(k)] for k in action_groups[g]] for g in group_names},
            **_label_metrics(latent, collapsed, num_latent, len(group_names), group_names, **settings),
        }
    return out


def _label_metrics(
    latent: Tensor,
    true: Tensor,
    num_latent: int,
    num_true: int,
    names: list[str],
    *,
    vectors: Tensor | None,
    fit_fraction: float,
    random_trials: int,
    few_label_counts: Sequence[int | None],
    few_label_draws: int,
    seed: int,
) -> dict[str, Any]:
    """NMI, table, majority probe, few-label curve and linear probe of one labelling (see :func:`ground_truth_metrics`)."""
    known = true >= 0
    table_AK = contingency_table(latent[known], true[known], num_latent, num_true)
    out: dict[str, Any] = {
        "action_names": names,
        "num_labelled_transitions": int(known.sum()),
        "nmi": nmi_from_table(table_AK),
        "nmi_random": random_nmi_baseline(
            latent[known], true[known], num_latent, num_true, trials=random_trials, seed=seed
        ),
        "contingency_table": table_AK.tolist(),
    }
    num_clips = latent.shape[0]
    unavailable = None
    if num_clips < 2:
        unavailable = "the probes need at least 2 clips (one to fit, one to score)"
    num_fit = min(max(round(fit_fraction * num_clips), 1), max(num_clips - 1, 1))
    fit, score = known[:num_fit], known[num_fit:]
    if unavailable is None and (not bool(fit.any()) or not bool(score.any())):
        unavailable = f"no labelled transitions in the {'fit' if not bool(fit.any()) else 'scored'} clips"
    if unavailable is not None:
        for key in ("probe", "few_label", "linear_probe"):
            out[key] = {"available": False, "reason": unavailable}
        return out
    l_fit, t_fit = latent[:num_fit][fit], true[:num_fit][fit]
    l_score, t_score = latent[num_fit:][score], true[num_fit:][score]
    probe = probe_accuracy(l_fit, t_fit, l_score, t_score, num_latent, num_true)
    out["probe"] = {
        "available": True,
        **probe.to_dict(),
        "mapping_names": [names[k] for k in probe.mapping.tolist()],
        "latent_fit_counts": torch.bincount(l_fit, minlength=num_latent).tolist(),
        "fit_clips": num_fit,
        "scored_clips": num_clips - num_fit,
    }
    out["few_label"] = {"available": True, **few_label_accuracy(
        l_fit, t_fit, l_score, t_score, num_latent, num_true, counts=few_label_counts, draws=few_label_draws,
        seed=seed,
    )}
    if vectors is None:
        out["linear_probe"] = {"available": False, "reason": "no latent vectors given"}
    else:
        v = vectors.detach().cpu()
        out["linear_probe"] = {"available": True, **linear_probe(
            v[:num_fit][fit], t_fit, v[num_fit:][score], t_score, num_true, seed=seed
        )}
    return out


def outcome_metrics(
    wm: WorldModel, clips: HeldOutClips, *, batch_size: int, device: torch.device
) -> dict[str, Any]:
    """Predicted against recorded rewards and episode ends, one step ahead from the real frames.

    For every transition ``t`` of every clip the model sees the real frames ``0..t`` and the
    actions ``0..t`` and predicts the step's reward and episode end
    (:meth:`~worldmodels.WorldModel.predict_outcome`); only transitions whose outcome the data
    recorded count.

    Returns:
        ``available`` (False, with a reason, when the model predicts no outcomes or the data has
        none), ``reward_correlation`` (Pearson, ``None`` when the recorded rewards are constant),
        ``reward_sign_accuracy``, ``reward_mae``, ``nonzero_rewards``, ``termination_accuracy``,
        ``terminations`` and the transition counts.
    """
    if not wm.dynamics.predicts_outcomes:
        return {"available": False, "reason": f"the {wm.dynamics.get_config()['name']} dynamics predicts no rewards"}
    if clips.rewards is None or not bool(torch.isfinite(clips.rewards).any()):
        return {"available": False, "reason": "the data recorded no rewards"}
    if getattr(wm.action_model, "uses_recorded_actions", False) and bool((clips.actions < 0).all()):
        return {"available": False, "reason": "the data recorded no actions for the model to condition on"}
    predicted_r, predicted_d = [], []
    for start in range(0, clips.video.shape[0], batch_size):
        video = clips.video[start : start + batch_size].to(device)
        given = clips.actions[start : start + batch_size].to(device)
        tokens = wm.encode(video)
        actions = wm.infer_actions(video, given.clamp_min(0)).long()
        rows_r, rows_d = [], []
        for t in range(video.shape[1] - 1):
            reward, done = wm.predict_outcome(tokens[:, : t + 1], actions[:, : t + 1])
            assert reward is not None and done is not None  # predicts_outcomes was checked above
            rows_r.append(reward.float().cpu())
            rows_d.append(done.float().cpu())
        predicted_r.append(torch.stack(rows_r, 1))
        predicted_d.append(torch.stack(rows_d, 1))
    pred_r, pred_d = torch.cat(predicted_r).double(), torch.cat(predicted_d).double()
    known_r = torch.isfinite(clips.rewards) & (clips.actions >= 0)
    true_r = clips.rewards.double()[known_r]
    p_r = pred_r[known_r]
    correlation = None
    if true_r.numel() > 1 and float(true_r.std()) > 0 and float(p_r.std()) > 0:
        correlation = float(torch.corrcoef(torch.stack([p_r, true_r]))[0, 1])
    recorded_d = clips.terminated if clips.terminated is not None else torch.full_like(clips.actions, -1)
    known_d = (recorded_d >= 0) & (clips.actions >= 0)
    true_d = recorded_d[known_d].double()
    return {
        "available": True,
        "transitions": int(known_r.sum()),
        "reward_correlation": correlation,
        "reward_sign_accuracy": float((torch.sign(p_r.round()) == torch.sign(true_r)).double().mean()),
        "reward_mae": float((p_r - true_r).abs().mean()),
        "nonzero_rewards": int((true_r != 0).sum()),
        "termination_transitions": int(known_d.sum()),
        "terminations": int(true_d.sum()),
        "termination_accuracy": float(((pred_d[known_d] > 0.5).double() == true_d).double().mean())
        if int(known_d.sum()) else None,
    }
