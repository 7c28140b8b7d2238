"""Latent-action quality against ground-truth actions (where the data has them, e.g. CoinRun).

Axis legend: ``B`` clips, ``T-1`` transitions, ``A`` latent actions, ``K`` true actions.

Inputs are matching index tensors: the latent action a model infers for each transition
(``model.infer_actions(video)``, ``B T-1``) and the true action of the same transition
(``B T-1``). The metrics are

* the contingency table ``A x K`` of co-occurrences,
* the normalised mutual information (NMI) between the two labelings,
* the usage histogram of the latent actions and its entropy (collapse to one code shows as
  entropy near 0),
* the accuracy of a many-to-one probe (each latent action predicts the true action it most
  often co-occurs with), fitted on one split of clips and scored on another, next to the
  accuracy of always predicting the most frequent true action (the chance baseline);
* the paper's few-label mapping (Genie, appendix E): with only ``K`` labelled transitions, map
  each latent action to a true action by majority vote and score the mapping on held-out
  transitions, as a curve of accuracy against ``K`` (:func:`few_label_accuracy`);
* a linear probe from the continuous latent vector to the true action (multinomial logistic
  regression fitted on one split, scored on another; :func:`linear_probe`);
* every metric also on *collapsed* true actions (:func:`collapse_actions`): raw controller
  actions grouped by what they visibly do (CoinRun: left, right, jump, stay).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from worldmodels.eval.codebook import CodebookStats, codebook_stats


def _flat_labels(labels: Tensor, num_classes: int, name: str) -> Tensor:
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer labels, got {type(labels).__name__}.")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor of action indices, got dtype {labels.dtype}.")
    if num_classes < 1:
        raise ValueError(f"The number of classes of {name} must be at least 1, got {num_classes}.")
    flat = labels.detach().reshape(-1).to("cpu", torch.int64)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= num_classes):
        raise ValueError(
            f"{name} holds indices in [{int(flat.min())}, {int(flat.max())}] but {num_classes} classes were "
            f"declared (valid: 0..{num_classes - 1}); pass the right number of actions."
        )
    return flat


def _check_same_shape(latent: Tensor, true: Tensor) -> None:
    if latent.shape != true.shape:
        raise ValueError(
            f"latent and true actions must label the same transitions (same shape, e.g. B T-1), got "
            f"{tuple(latent.shape)} and {tuple(true.shape)}."
        )


def contingency_table(latent: Tensor, true: Tensor, num_latent: int, num_true: int) -> Tensor:
    """Co-occurrence counts of latent and true actions.

    Shapes:
        ``latent, true``: ``...`` (same shape, e.g. ``B T-1``) -> ``A K`` int64.

    Args:
        latent: latent action indices in ``[0, num_latent)``.
        true: true action indices in ``[0, num_true)``.
        num_latent: ``A``.
        num_true: ``K``.

    Returns:
        ``table[a, k]`` = number of transitions with latent action ``a`` and true action ``k``.
    """
    _check_same_shape(latent, true)
    latent_flat = _flat_labels(latent, num_latent, "latent")
    true_flat = _flat_labels(true, num_true, "true")
    counts = torch.bincount(latent_flat * num_true + true_flat, minlength=num_latent * num_true)
    return counts.reshape(num_latent, num_true)


def _entropy_nats(probs: Tensor) -> float:
    nz = probs[probs > 0]
    return float(-(nz * nz.log()).sum())


def nmi_from_table(table: Tensor) -> float:
    """Normalised mutual information of a contingency table, arithmetic-mean normalisation.

    ``NMI = I(L; K) / ((H(L) + H(K)) / 2)`` with entropies and mutual information in nats from the
    empirical joint distribution ``table / table.sum()``. This is the default of
    ``sklearn.metrics.normalized_mutual_info_score`` (``average_method="arithmetic"``), and follows
    its conventions at the edges: 1 when both labelings are constant (identical trivial
    partitions), 0 when only one is (no shared information).

    Shapes:
        ``table``: ``A K`` counts -> scalar.

    Returns:
        NMI in ``[0, 1]``: 1 when each labeling determines the other (up to renaming), 0 when they
        are independent.
    """
    if table.ndim != 2:
        raise ValueError(f"A contingency table is 2-D (A latent x K true), got shape {tuple(table.shape)}.")
    joint = table.detach().to("cpu", torch.float64)
    if bool((joint < 0).any()):
        raise ValueError("A contingency table holds counts; found negative entries.")
    total = float(joint.sum())
    if total <= 0:
        raise ValueError("The contingency table is empty (sums to 0): there are no transitions to compare.")
    joint = joint / total
    p_latent_A = joint.sum(dim=1)
    p_true_K = joint.sum(dim=0)
    h_latent = _entropy_nats(p_latent_A)
    h_true = _entropy_nats(p_true_K)
    if h_latent == 0.0 and h_true == 0.0:
        return 1.0
    outer_AK = p_latent_A[:, None] * p_true_K[None, :]
    nz = joint > 0
    mutual_info = float((joint[nz] * (joint[nz] / outer_AK[nz]).log()).sum())
    mutual_info = max(mutual_info, 0.0)  # round-off can make an exact 0 slightly negative
    normaliser = (h_latent + h_true) / 2
    return min(mutual_info / normaliser, 1.0)


def normalized_mutual_information(
    latent: Tensor, true: Tensor, num_latent: int | None = None, num_true: int | None = None
) -> float:
    """NMI between latent and true actions (arithmetic mean of the entropies, as sklearn's default).

    See :func:`nmi_from_table` for the definition; the table is built with
    :func:`contingency_table`. Classes that never occur do not change the value, so the sizes
    default to ``max + 1`` of each labeling.

    Shapes:
        ``latent, true``: ``...`` (same shape) -> scalar.

    Args:
        latent: latent action indices.
        true: true action indices.
        num_latent: ``A`` (default: ``latent.max() + 1``).
        num_true: ``K`` (default: ``true.max() + 1``).

    Returns:
        NMI in ``[0, 1]``.
    """
    _check_same_shape(latent, true)
    if latent.numel() == 0:
        raise ValueError("No transitions given: latent and true are empty.")
    num_latent = int(latent.max()) + 1 if num_latent is None else num_latent
    num_true = int(true.max()) + 1 if num_true is None else num_true
    return nmi_from_table(contingency_table(latent, true, num_latent, num_true))


def action_usage(latent: Tensor, num_latent: int) -> CodebookStats:
    """Usage histogram of the latent actions and its entropy.

    The same statistics as :func:`worldmodels.eval.codebook.codebook_stats` on the latent action
    codebook: ``counts`` (the histogram), ``entropy_nats``, ``normalized_entropy`` (entropy as a
    fraction of ``log A``; near 0 means the model collapsed onto one action), ``perplexity`` and
    ``usage``.

    Shapes:
        ``latent``: ``...`` integer in ``[0, A)``.
    """
    return codebook_stats(latent, num_latent)


@dataclass
class ProbeResult:
    """A many-to-one probe from latent to true actions, scored on held-out transitions.

    Attributes:
        accuracy: fraction of scored transitions whose true action the probe predicts.
        chance_accuracy: accuracy of always predicting the most frequent true action of the fit
            split (the majority-class baseline), on the same scored transitions.
        mapping: ``A`` int64, the true action predicted for each latent action. A latent action
            never seen in the fit split predicts the fit split's most frequent true action.
        num_fit: transitions the probe was fitted on.
        num_scored: transitions it was scored on.
    """

    accuracy: float
    chance_accuracy: float
    mapping: Tensor
    num_fit: int
    num_scored: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary, for reports."""
        return {
            "accuracy": self.accuracy,
            "chance_accuracy": self.chance_accuracy,
            "mapping": self.mapping.tolist(),
            "num_fit": self.num_fit,
            "num_scored": self.num_scored,
        }


def fit_majority_probe(latent: Tensor, true: Tensor, num_latent: int, num_true: int) -> Tensor:
    """Map each latent action to the true action it most often co-occurs with.

    Ties go to the lowest true action index; unseen latent actions map to the most frequent true
    action overall.

    Shapes:
        ``latent, true``: ``...`` (same shape) -> mapping ``A`` int64.
    """
    table_AK = contingency_table(latent, true, num_latent, num_true)
    if int(table_AK.sum()) == 0:
        raise ValueError("Cannot fit a probe on zero transitions.")
    overall_majority = int(table_AK.sum(dim=0).argmax())
    mapping_A = table_AK.argmax(dim=1)
    unseen_A = table_AK.sum(dim=1) == 0
    mapping_A[unseen_A] = overall_majority
    return mapping_A


def probe_accuracy(
    latent_fit: Tensor,
    true_fit: Tensor,
    latent_score: Tensor,
    true_score: Tensor,
    num_latent: int,
    num_true: int,
) -> ProbeResult:
    """Fit a majority probe on one split and score it on another.

    Shapes:
        ``latent_fit, true_fit``: ``...`` (same shape); ``latent_score, true_score``: ``...``
        (same shape, may differ from the fit split's).

    Args:
        latent_fit: latent actions of the fit split.
        true_fit: true actions of the fit split.
        latent_score: latent actions of the scored split.
        true_score: true actions of the scored split.
        num_latent: ``A``.
        num_true: ``K``.

    Returns:
        :class:`ProbeResult` with the accuracy and the majority-class chance baseline.
    """
    mapping_A = fit_majority_probe(latent_fit, true_fit, num_latent, num_true)
    _check_same_shape(latent_score, true_score)
    latent_flat = _flat_labels(latent_score, num_latent, "latent_score")
    true_flat = _flat_labels(true_score, num_true, "true_score")
    if true_flat.numel() == 0:
        raise ValueError("Cannot score a probe on zero transitions: the scored split is empty.")
    majority = int(torch.bincount(_flat_labels(true_fit, num_true, "true_fit"), minlength=num_true).argmax())
    accuracy = float((mapping_A[latent_flat] == true_flat).double().mean())
    chance = float((true_flat == majority).double().mean())
    return ProbeResult(
        accuracy=accuracy,
        chance_accuracy=chance,
        mapping=mapping_A,
        num_fit=int(latent_fit.numel()),
        num_scored=int(true_flat.numel()),
    )


@dataclass
class LatentActionMetrics:
    """Everything :func:`latent_action_metrics` measures on a held-out split.

    Attributes:
        nmi: normalised mutual information over all transitions (arithmetic normalisation).
        table: ``A K`` contingency table over all transitions.
        usage: latent action usage histogram and entropy (:class:`CodebookStats`).
        probe: many-to-one probe fitted on the first clips and scored on the rest.
        num_transitions: transitions measured.
    """

    nmi: float
    table: Tensor
    usage: CodebookStats
    probe: ProbeResult
    num_transitions: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary, for reports."""
        return {
            "nmi": self.nmi,
            "table": self.table.tolist(),
            "usage": self.usage.to_dict(),
            "probe": self.probe.to_dict(),
            "num_transitions": self.num_transitions,
        }


def latent_action_metrics(
    latent: Tensor, true: Tensor, num_latent: int, num_true: int, fit_fraction: float = 0.5
) -> LatentActionMetrics:
    """NMI, contingency table, usage and probe accuracy of latent actions on held-out clips.

    The probe is fitted on the first ``round(fit_fraction * B)`` clips and scored on the others;
    splitting by clip (not by transition) keeps transitions of one clip on one side.

    Shapes:
        ``latent, true``: ``B T-1`` (``B >= 2`` clips).

    Args:
        latent: latent actions, e.g. ``model.infer_actions(video)``.
        true: the true actions of the same transitions.
        num_latent: ``A`` (``model.num_actions``).
        num_true: ``K``, the number of true actions of the environment.
        fit_fraction: share of the clips used to fit the probe, in ``(0, 1)``.

    Returns:
        :class:`LatentActionMetrics`.
    """
    _check_same_shape(latent, true)
    if latent.ndim != 2:
        raise ValueError(f"latent and true must be shaped B T-1 (clips x transitions), got {tuple(latent.shape)}.")
    num_clips = latent.shape[0]
    if num_clips < 2:
        raise ValueError(f"The probe needs at least 2 clips (one to fit, one to score), got {num_clips}.")
    if not 0.0 < fit_fraction < 1.0:
        raise ValueError(f"fit_fraction must lie strictly between 0 and 1, got {fit_fraction}.")
    num_fit = min(max(round(fit_fraction * num_clips), 1), num_clips - 1)
    table = contingency_table(latent, true, num_latent, num_true)
    return LatentActionMetrics(
        nmi=nmi_from_table(table),
        table=table,
        usage=action_usage(latent, num_latent),
        probe=probe_accuracy(latent[:num_fit], true[:num_fit], latent[num_fit:], true[num_fit:], num_latent, num_true),
        num_transitions=int(latent.numel()),
    )


def collapse_actions(true: Tensor, groups: Sequence[Sequence[int]]) -> Tensor:
    """Map raw true actions to groups (``-1`` stays unknown).

    Shapes:
        ``true``: ``...`` int64 -> ``...`` int64 in ``[0, len(groups))`` or ``-1``.

    Args:
        true: raw action indices.
        groups: for each group, the raw actions it contains (every raw action at most once).

    Raises:
        ValueError: when a raw action appears in two groups, or a known action in none.
    """
    lookup: dict[int, int] = {}
    for g, members in enumerate(groups):
        for raw in members:
            if int(raw) in lookup:
                raise ValueError(f"Raw action {raw} is in two action groups ({lookup[int(raw)]} and {g}).")
            lookup[int(raw)] = g
    size = max([*lookup, int(true.max()) if true.numel() else 0]) + 1
    table = torch.full((size,), -2, dtype=torch.int64)
    for raw, g in lookup.items():
        table[raw] = g
    out = torch.where(true >= 0, table[true.clamp_min(0).long()], torch.full_like(true, -1, dtype=torch.int64))
    missing = sorted({int(v) for v in true[(out == -2)].tolist()})
    if missing:
        raise ValueError(f"Raw actions {missing} belong to no action group; every known action needs one.")
    return out


def few_label_accuracy(
    latent_pool: Tensor,
    true_pool: Tensor,
    latent_score: Tensor,
    true_score: Tensor,
    num_latent: int,
    num_true: int,
    *,
    counts: Sequence[int | None] = (10, 50, 200, None),
    draws: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """The paper's few-label mapping: accuracy against the number ``K`` of labelled transitions.

    For each ``K``, ``draws`` times: take ``K`` transitions of the labelled pool at random, map each
    latent action to the true action it co-occurs with most often among them (a latent action the
    ``K`` labels never show maps to their most frequent true action), and score the mapping on the
    scored transitions. ``None`` in ``counts`` means the whole pool (one draw); a ``K`` larger than
    the pool is left out (listed in ``skipped_counts``), never silently shrunk.

    Shapes:
        ``latent_pool, true_pool``: ``M`` (labelled, flat); ``latent_score, true_score``: ``S``.

    Returns:
        ``{"counts": [...], "accuracy": [mean per K], "accuracy_std": [...], "chance_accuracy",
        "draws", "skipped_counts", "num_pool", "num_scored"}``; ``chance_accuracy`` is the accuracy of always
        predicting the pool's most frequent true action.
    """
    pool_l = _flat_labels(latent_pool, num_latent, "latent_pool")
    pool_t = _flat_labels(true_pool, num_true, "true_pool")
    score_l = _flat_labels(latent_score, num_latent, "latent_score")
    score_t = _flat_labels(true_score, num_true, "true_score")
    if pool_l.numel() != pool_t.numel() or score_l.numel() != score_t.numel():
        raise ValueError("latent and true actions must label the same transitions.")
    if pool_l.numel() == 0 or score_l.numel() == 0:
        raise ValueError("few_label_accuracy needs labelled transitions in both the pool and the scored set.")
    generator = torch.Generator().manual_seed(seed)
    used_counts, means, stds, skipped = [], [], [], []
    for k in counts:
        if k is not None and int(k) > pool_l.numel():
            skipped.append(int(k))
            continue
        k_eff = pool_l.numel() if k is None else int(k)
        n_draws = 1 if k_eff == pool_l.numel() else draws
        accuracies = []
        for _ in range(n_draws):
            pick = torch.randperm(pool_l.numel(), generator=generator)[:k_eff]
            mapping = fit_majority_probe(pool_l[pick], pool_t[pick], num_latent, num_true)
            accuracies.append(float((mapping[score_l] == score_t).double().mean()))
        values = torch.tensor(accuracies, dtype=torch.float64)
        used_counts.append(k_eff)
        means.append(float(values.mean()))
        stds.append(float(values.std(correction=1)) if len(accuracies) > 1 else 0.0)
    majority = int(torch.bincount(pool_t, minlength=num_true).argmax())
    return {
        "counts": used_counts,
        "accuracy": means,
        "accuracy_std": stds,
        "chance_accuracy": float((score_t == majority).double().mean()),
        "draws": draws,
        "skipped_counts": skipped,
        "num_pool": int(pool_l.numel()),
        "num_scored": int(score_l.numel()),
    }


def linear_probe(
    vectors_fit: Tensor,
    true_fit: Tensor,
    vectors_score: Tensor,
    true_score: Tensor,
    num_true: int,
    *,
    steps: int = 300,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> dict[str, Any]:
    """Multinomial logistic regression from latent vectors to true actions, scored on held-out ones.

    Features are standardised with the fit split's mean and deviation; the model is fitted by
    full-batch L-BFGS on the cross-entropy plus an L2 penalty (deterministic for a given seed).

    Shapes:
        ``vectors_fit``: ``M D`` float, ``true_fit``: ``M``; ``vectors_score``: ``S D``, ``true_score``: ``S``.

    Returns:
        ``{"accuracy", "chance_accuracy", "num_fit", "num_scored", "dim"}``; ``chance_accuracy``
        always predicts the fit split's most frequent true action.
    """
    if vectors_fit.ndim != 2 or vectors_score.ndim != 2 or vectors_fit.shape[1] != vectors_score.shape[1]:
        raise ValueError(
            f"linear_probe needs M D and S D vectors, got {tuple(vectors_fit.shape)} and {tuple(vectors_score.shape)}."
        )
    fit_t = _flat_labels(true_fit, num_true, "true_fit")
    score_t = _flat_labels(true_score, num_true, "true_score")
    if fit_t.numel() != vectors_fit.shape[0] or score_t.numel() != vectors_score.shape[0]:
        raise ValueError("linear_probe needs one true action per latent vector.")
    x_fit = vectors_fit.detach().to("cpu", torch.float64)
    x_score = vectors_score.detach().to("cpu", torch.float64)
    mean, std = x_fit.mean(0), x_fit.std(0, correction=0).clamp_min(1e-8)
    x_fit, x_score = (x_fit - mean) / std, (x_score - mean) / std
    generator = torch.Generator().manual_seed(seed)
    weight = (torch.randn(x_fit.shape[1], num_true, generator=generator, dtype=torch.float64) * 0.01)
    weight.requires_grad_()
    bias = torch.zeros(num_true, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x_fit @ weight + bias, fit_t) + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        predicted = (x_score @ weight + bias).argmax(-1)
    majority = int(torch.bincount(fit_t, minlength=num_true).argmax())
    return {
        "accuracy": float((predicted == score_t).double().mean()),
        "chance_accuracy": float((score_t == majority).double().mean()),
        "num_fit": int(fit_t.numel()),
        "num_scored": int(score_t.numel()),
        "dim": int(x_fit.shape[1]),
    }


__all__ = [
    "LatentActionMetrics",
    "ProbeResult",
    "action_usage",
    "collapse_actions",
    "contingency_table",
    "few_label_accuracy",
    "fit_majority_probe",
    "latent_action_metrics",
    "linear_probe",
    "nmi_from_table",
    "normalized_mutual_information",
    "probe_accuracy",
]
