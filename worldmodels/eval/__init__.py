"""Evaluation metrics (specification, section 5).

* Reconstruction: :func:`psnr`, :func:`ssim` (frame by frame, ``... C H W``).
* Controllability: :func:`delta_psnr`, the Genie paper's Delta_t PSNR.
* Latent actions against ground truth: :func:`normalized_mutual_information`,
  :func:`contingency_table`, :func:`action_usage`, :func:`probe_accuracy`, and all of them on a
  held-out split with :func:`latent_action_metrics`.
* Codebooks: :func:`codebook_usage`, :func:`codebook_perplexity`, :func:`codebook_stats`.
* Video quality: :func:`fvd` with a local I3D (:func:`load_i3d`); :func:`compute_fvd` returns a
  skipped result, with the reason, when no weights are configured.

Every function takes tensors and returns tensors, floats or small dataclasses with a
``to_dict()`` for reports. :func:`~worldmodels.eval.evaluation.evaluate` (all of them on a checkpoint
and a held-out data set, with ``report.json``, ``report.md`` and pictures) is importable from here
too; it is loaded on first use, since it pulls in the data and plotting code.
"""

from typing import Any

from worldmodels.eval.codebook import (
    CodebookStats,
    code_histogram,
    codebook_perplexity,
    codebook_stats,
    codebook_usage,
    entropy_of_counts,
)
from worldmodels.eval.controllability import ControllabilityResult, ControllableModel, delta_psnr
from worldmodels.eval.fvd import (
    I3D,
    FVDResult,
    compute_fvd,
    feature_statistics,
    frechet_distance,
    fvd,
    i3d_features,
    load_i3d,
    preprocess_for_i3d,
)
from worldmodels.eval.image_metrics import gaussian_window, psnr, ssim
from worldmodels.eval.latent_actions import (
    LatentActionMetrics,
    ProbeResult,
    action_usage,
    collapse_actions,
    contingency_table,
    few_label_accuracy,
    fit_majority_probe,
    latent_action_metrics,
    linear_probe,
    nmi_from_table,
    normalized_mutual_information,
    probe_accuracy,
)

__all__ = [
    "I3D",
    "CodebookStats",
    "ControllabilityResult",
    "ControllableModel",
    "FVDResult",
    "LatentActionMetrics",
    "ProbeResult",
    "action_usage",
    "code_histogram",
    "codebook_perplexity",
    "codebook_stats",
    "codebook_usage",
    "collapse_actions",
    "compute_fvd",
    "contingency_table",
    "delta_psnr",
    "entropy_of_counts",
    "feature_statistics",
    "few_label_accuracy",
    "fit_majority_probe",
    "frechet_distance",
    "fvd",
    "gaussian_window",
    "i3d_features",
    "latent_action_metrics",
    "linear_probe",
    "load_i3d",
    "nmi_from_table",
    "normalized_mutual_information",
    "preprocess_for_i3d",
    "probe_accuracy",
    "psnr",
    "ssim",
    "evaluate",
    "EvalReport",
]

_LAZY = {"evaluate": "worldmodels.eval.evaluation", "EvalReport": "worldmodels.eval.report"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

