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
  accuracy of always predicting the most frequent true action (the chance baseline).
"""

from __future__ import annotations

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


__all__ = [
    "LatentActionMetrics",
    "ProbeResult",
    "action_usage",
    "contingency_table",
    "fit_majority_probe",
    "latent_action_metrics",
    "nmi_from_table",
    "normalized_mutual_information",
    "probe_accuracy",
]
