"""The evaluation report: every number :func:`~worldmodels.eval.evaluation.evaluate` measured, as files.

An :class:`EvalReport` holds the numbers, the pictures and the settings that produced them;
:meth:`EvalReport.save` writes

* ``report.json``: all numbers, machine-readable (see :meth:`EvalReport.to_dict`);
* ``report.md``: the headline table, Delta_t PSNR per ``t``, and the contingency table
  (:mod:`worldmodels.eval.markdown`);
* ``reconstruction.png``: real / reconstructed / generated (inferred actions) frames over time;
* ``latent_actions.png``: one row per latent action, all rolled from the same prompt frame;
* ``delta_psnr.png``: the Delta_t PSNR curve over ``t`` with a band of one standard deviation.

:func:`evaluate` is importable from here as well as from :mod:`worldmodels.eval.evaluation`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from worldmodels.checkpoint import resolve_model_dir
from worldmodels.eval.codebook import CodebookStats
from worldmodels.eval.controllability import ControllabilityResult
from worldmodels.eval.fvd import FVDResult

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "FIGURE_FILES",
    "PAPER_T",
    "REPORT_FORMAT",
    "REPORT_FORMAT_VERSION",
    "EvalReport",
    "codebook_dict",
    "controllability_summary",
    "fmt",
    "jsonable",
    "md_cell",
    "resolve_checkpoint",
    "spread_summary",
    "usage_dict",
]

PAPER_T: int = 4
"""The frame at which the Genie paper reports Delta_t PSNR."""

REPORT_FORMAT: str = "worldmodels-eval-report"
"""The ``format`` entry of ``report.json``."""

REPORT_FORMAT_VERSION: int = 1
"""The ``format_version`` entry of ``report.json``."""

FIGURE_FILES: tuple[str, ...] = ("reconstruction.png", "latent_actions.png", "delta_psnr.png")
"""The pictures :meth:`EvalReport.save` writes."""

resolve_checkpoint = resolve_model_dir
"""The model directory a path names (:func:`worldmodels.checkpoint.resolve_model_dir`, the one loader's rule)."""


def __getattr__(name: str) -> Any:
    # ``evaluate`` lives in worldmodels.eval.evaluation (which imports this module); it stays importable from here.
    if name == "evaluate":
        from worldmodels.eval.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------
# Numbers as JSON and text
# ---------------------------------------------------------------------------------------------


def spread_summary(values: Tensor) -> dict[str, Any]:
    """Mean, standard deviation (n - 1), standard error, min, max and count of 1-D values."""
    v = values.detach().double().reshape(-1).cpu()
    n = int(v.numel())
    std = float(v.std(correction=1)) if n > 1 else None
    return {
        "mean": float(v.mean()),
        "std": std,
        "sem": std / math.sqrt(n) if std is not None else None,
        "min": float(v.min()),
        "max": float(v.max()),
        "n": n,
    }


def jsonable(value: Any) -> Any:
    """Nested dicts/lists with tensors, paths and non-finite floats made JSON-safe (NaN -> null)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Tensor):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for a table: ``digits`` decimals, ``"n/a"`` for ``None`` or non-finite, never ``-0.00``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def md_cell(text: Any) -> str:
    """Text safe inside a Markdown table cell (pipes escaped, one line)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def usage_dict(stats: CodebookStats) -> dict[str, Any]:
    """Counts, fractions (summing to 1), used codes, entropy and perplexity of a code histogram (JSON-ready)."""
    total = max(int(stats.counts.sum()), 1)
    return {
        "counts": stats.counts.tolist(),
        "fraction": [c / total for c in stats.counts.tolist()],
        "num_used": stats.num_used,
        "entropy_nats": stats.entropy_nats,
        "normalized_entropy": stats.normalized_entropy,
        "perplexity": stats.perplexity,
    }


def codebook_dict(stats: CodebookStats) -> dict[str, Any]:
    """A codebook's statistics for ``report.json``, with the number of indices counted."""
    return {**stats.to_dict(), "num_indices": int(stats.counts.sum())}


def controllability_summary(result: ControllabilityResult) -> dict[str, Any]:
    """Delta_t PSNR per ``t``, at the paper's ``t = 4``, and its mean over ``t`` with spread (JSON-ready)."""
    at_paper = None
    if result.horizon >= PAPER_T:
        i = PAPER_T - 1
        at_paper = {
            "t": PAPER_T,
            "mean": float(result.delta_psnr_t[i]),
            "std": float(result.delta_psnr_std_t[i]),
            "sem": float(result.delta_psnr_sem_t[i]),
            "n": result.num_clips,
        }
    return {
        **result.to_dict(),
        "t": list(range(1, result.horizon + 1)),
        "at_paper_t": at_paper,
        "mean_over_t": spread_summary(result.delta_psnr_per_clip.mean(dim=1)),
    }


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass
class EvalReport:
    """Everything :func:`evaluate` measured, with the settings that produced it.

    Attributes:
        settings: model, checkpoint, data, split, clip count, horizon, seed, ... (JSON-ready).
        reconstruction: tokenizer PSNR/SSIM: ``psnr`` and ``ssim`` spreads over clips (mean,
            std, sem, min, max, n), ``psnr_per_frame`` / ``ssim_per_frame`` (mean over clips of
            each frame position), ``per_clip`` values.
        controllability: the Delta_t PSNR result.
        latent_actions: ``num_actions``, ``num_transitions``, ``usage`` (counts, fractions that
            sum to 1, entropy, perplexity) and ``ground_truth`` (:func:`ground_truth_metrics`).
        codebooks: ``{"tokenizer": ..., "lam": ...}`` usage statistics over the held-out split.
        fvd: the FVD, or why it was skipped.
        timings: seconds per step (``load_model``, ``load_data``, ``reconstruction``,
            ``latent_actions``, ``delta_psnr``, ``fvd``, ``figures``; ``total`` is all of these,
            and ``write``, the time :meth:`save` took, comes on top).
        notes: caveats worth reading next to the numbers.
        figures: the pictures (:class:`PIL.Image.Image`) by file name.
        figure_layouts: per picture its grid (:meth:`GridLayout.to_dict`) or size.
        files: what :meth:`save` wrote, by kind.
    """

    settings: dict[str, Any]
    reconstruction: dict[str, Any]
    controllability: ControllabilityResult
    latent_actions: dict[str, Any]
    codebooks: dict[str, CodebookStats | None]
    fvd: FVDResult
    timings: dict[str, float]
    notes: list[str] = field(default_factory=list)
    figures: dict[str, PILImage] = field(default_factory=dict, repr=False)
    figure_layouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, Any] = field(default_factory=lambda: {"available": False, "reason": "not measured"})
    """Predicted against recorded rewards and episode ends (:func:`outcome_metrics`)."""
    baseline: dict[str, Any] | None = None
    """The ground-truth-action baseline on the same clips (:func:`evaluate`'s ``baseline``): its
    ``checkpoint``, ``model_name`` and ``controllability`` (as :meth:`controllability_dict`)."""

    # ------------------------------------------------------------------ numbers
    def latent_names(self) -> list[str] | None:
        """Each latent action named by the true action it maps to (collapsed groups where the data has them).

        From the majority mapping of the fit clips, with the share of the latent action's
        transitions that carry that true action: ``"right (71%)"``. ``None`` without ground truth.
        """
        truth = self.latent_actions.get("ground_truth", {})
        if not truth.get("available"):
            return None
        source = truth.get("collapsed") or truth
        table = source["contingency_table"]
        names = []
        for row in table:
            total = sum(row)
            if not total:
                names.append("unused")
                continue
            top = max(range(len(row)), key=row.__getitem__)
            names.append(f"{source['action_names'][top]} ({100 * row[top] / total:.0f}%)")
        return names

    def controllability_dict(self) -> dict[str, Any]:
        """Delta_t PSNR per ``t``, at the paper's ``t = 4``, and its mean over ``t`` with spread."""
        return controllability_summary(self.controllability)

    def headline(self) -> dict[str, Any]:
        """The headline numbers (flat, JSON-ready), as the table of ``report.md`` shows them."""
        control = self.controllability_dict()
        truth = self.latent_actions.get("ground_truth", {})
        probe = truth.get("probe", {}) if truth.get("available") else {}
        at_paper = control["at_paper_t"] or {}
        tok, lam = self.codebooks["tokenizer"], self.codebooks["lam"]
        assert lam is not None, "the action model's codebook statistics are always measured"
        collapsed = truth.get("collapsed", {}) if truth.get("available") else {}
        few = collapsed.get("few_label", {}) if collapsed.get("few_label", {}).get("available") else {}
        few_200 = dict(zip(few.get("counts", []), few.get("accuracy", []))).get(200)
        linear = truth.get("linear_probe", {}) if truth.get("available") else {}
        linear_collapsed = collapsed.get("linear_probe", {})
        t4 = PAPER_T - 1 if self.controllability.horizon >= PAPER_T else None
        base = (self.baseline or {}).get("controllability", {})
        base_at = base.get("at_paper_t") or {}
        fractions = self.latent_actions.get("usage", {}).get("fraction") or []
        return jsonable(
            {
                "recon_psnr": self.reconstruction["psnr"]["mean"],
                "recon_psnr_std": self.reconstruction["psnr"]["std"],
                "recon_ssim": self.reconstruction["ssim"]["mean"],
                "recon_ssim_std": self.reconstruction["ssim"]["std"],
                "delta_psnr_t4": at_paper.get("mean"),
                "delta_psnr_t4_std": at_paper.get("std"),
                "delta_psnr_t4_sem": at_paper.get("sem"),
                "delta_psnr_mean_over_t": control["mean_over_t"]["mean"],
                "delta_psnr_mean_over_t_std": control["mean_over_t"]["std"],
                "delta_psnr_mean_over_t_sem": control["mean_over_t"]["sem"],
                "horizon": self.controllability.horizon,
                "num_clips": self.controllability.num_clips,
                "nmi": truth.get("nmi"),
                "nmi_random": truth.get("nmi_random", {}).get("mean"),
                "probe_accuracy": probe.get("accuracy"),
                "probe_chance": probe.get("chance_accuracy"),
                "gen_psnr_t4": float(self.controllability.psnr_inferred_t[t4]) if t4 is not None else None,
                "random_psnr_t4": float(self.controllability.psnr_random_t[t4]) if t4 is not None else None,
                "nmi_collapsed": collapsed.get("nmi"),
                "nmi_collapsed_random": collapsed.get("nmi_random", {}).get("mean"),
                "few_label_k200_collapsed": few_200,
                "few_label_chance_collapsed": few.get("chance_accuracy"),
                "linear_probe_accuracy": linear.get("accuracy"),
                "linear_probe_chance": linear.get("chance_accuracy"),
                "linear_probe_collapsed_accuracy": linear_collapsed.get("accuracy"),
                "linear_probe_collapsed_chance": linear_collapsed.get("chance_accuracy"),
                "latent_min_usage": min(fractions) if fractions else None,
                "baseline_delta_psnr_t4": base_at.get("mean"),
                "baseline_delta_psnr_t4_sem": base_at.get("sem"),
                "baseline_gen_psnr_t4": base["psnr_inferred_t"][t4] if base and t4 is not None else None,
                "reward_correlation": self.outcomes.get("reward_correlation"),
                "termination_accuracy": self.outcomes.get("termination_accuracy"),
                "tokenizer_usage": tok.usage if tok is not None else None,
                "tokenizer_perplexity": tok.perplexity if tok is not None else None,
                "lam_usage": lam.usage,
                "lam_perplexity": lam.perplexity,
                "fvd": self.fvd.value,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """The content of ``report.json``.

        Top-level keys: ``format``, ``format_version``, ``headline`` (:meth:`headline`),
        ``settings``, ``reconstruction``, ``controllability`` (:meth:`controllability_dict`),
        ``latent_actions``, ``codebooks`` (``tokenizer``, ``lam``: counts, usage, perplexity,
        ...), ``fvd``, ``timings``, ``notes``, ``figures`` (layouts) and ``files``. Non-finite
        numbers (e.g. a spread over one clip) are ``null``.
        """
        return jsonable(
            {
                "format": REPORT_FORMAT,
                "format_version": REPORT_FORMAT_VERSION,
                "headline": self.headline(),
                "settings": self.settings,
                "reconstruction": self.reconstruction,
                "controllability": self.controllability_dict(),
                "latent_actions": self.latent_actions,
                "codebooks": {name: codebook_dict(stats) if stats is not None else None
                              for name, stats in self.codebooks.items()},
                "fvd": self.fvd.to_dict(),
                "timings": self.timings,
                "notes": self.notes,
                "figures": self.figure_layouts,
                "files": self.files,
                "baseline": self.baseline,
                "outcomes": self.outcomes,
                "latent_names": self.latent_names(),
            }
        )

    # ------------------------------------------------------------------ text
    def summary(self) -> str:
        """A few lines for the console: the headline numbers and what was evaluated."""
        s = self.settings
        head = self.headline()
        rec = self.reconstruction
        control = self.controllability_dict()
        lines = [
            f"evaluated {s.get('model_name') or 'model'} on {s['num_clips']} clip(s) of {s['clip_frames']} frames "
            f"from {s['data']} (split {s['split']}), horizon {s['horizon']}, seed {s['seed']}",
            f"  reconstruction   PSNR {fmt(head['recon_psnr'])} dB (std {fmt(rec['psnr']['std'])}), "
            f"SSIM {fmt(head['recon_ssim'], 3)} (std {fmt(rec['ssim']['std'], 3)})",
        ]
        mean_t = control["mean_over_t"]
        paper = (
            f"t={PAPER_T}: {fmt(head['delta_psnr_t4'])} dB (sem {fmt(head['delta_psnr_t4_sem'])}); "
            if head["delta_psnr_t4"] is not None
            else f"t={PAPER_T}: n/a (horizon {self.controllability.horizon} < {PAPER_T}); "
        )
        lines.append(
            f"  Delta_t PSNR     {paper}mean over t=1..{self.controllability.horizon}: {fmt(mean_t['mean'])} dB "
            f"(std {fmt(mean_t['std'])}, sem {fmt(mean_t['sem'])}, {mean_t['n']} clips)"
        )
        truth = self.latent_actions["ground_truth"]
        usage = self.latent_actions["usage"]
        if truth.get("available"):
            probe = truth["probe"]
            probe_text = (
                f"probe {fmt(probe['accuracy'], 3)} vs chance {fmt(probe['chance_accuracy'], 3)}"
                if probe.get("available")
                else f"probe n/a ({probe['reason']})"
            )
            lines.append(
                f"  latent actions   NMI {fmt(truth['nmi'], 3)} (random {fmt(truth['nmi_random']['mean'], 3)}); "
                f"{probe_text}; entropy {fmt(usage['normalized_entropy'], 2)} of max"
            )
            if head["nmi_collapsed"] is not None:
                lines.append(
                    f"  collapsed        NMI {fmt(head['nmi_collapsed'], 3)} (random "
                    f"{fmt(head['nmi_collapsed_random'], 3)}); few-label K=200 {fmt(head['few_label_k200_collapsed'], 3)} "
                    f"vs chance {fmt(head['few_label_chance_collapsed'], 3)}; linear probe "
                    f"{fmt(head['linear_probe_collapsed_accuracy'], 3)}"
                )
            names = self.latent_names()
            if names:
                lines.append("  latent names     " + ", ".join(f"{a}: {n}" for a, n in enumerate(names)))
        else:
            lines.append(
                f"  latent actions   entropy {fmt(usage['normalized_entropy'], 2)} of max; no ground truth "
                f"({truth['reason']})"
            )
        tok, lam = self.codebooks["tokenizer"], self.codebooks["lam"]
        assert lam is not None, "the action model's codebook statistics are always measured"
        tokenizer_part = ("tokenizer continuous (no codebook)" if tok is None else
                          f"tokenizer {tok.num_used}/{tok.num_codes} used, perplexity {fmt(tok.perplexity, 1)}")
        lines.append(
            f"  codebooks        {tokenizer_part}; "
            f"LAM {lam.num_used}/{lam.num_codes} used, perplexity {fmt(lam.perplexity, 2)}"
        )
        if head["gen_psnr_t4"] is not None:
            lines.append(
                f"  generated        PSNR at t={PAPER_T} {fmt(head['gen_psnr_t4'])} dB with the inferred actions, "
                f"{fmt(head['random_psnr_t4'])} dB with random ones"
            )
        if self.baseline is not None:
            lines.append(
                f"  baseline         recorded actions ({self.baseline.get('model_name')}): Delta_t PSNR t={PAPER_T} "
                f"{fmt(head['baseline_delta_psnr_t4'])} dB (sem {fmt(head['baseline_delta_psnr_t4_sem'])}), "
                f"generated PSNR {fmt(head['baseline_gen_psnr_t4'])} dB"
            )
        if self.outcomes.get("available"):
            o = self.outcomes
            lines.append(
                f"  rewards          predicted vs recorded: correlation {fmt(o['reward_correlation'], 3)}, sign "
                f"accuracy {fmt(o['reward_sign_accuracy'], 3)} ({o['nonzero_rewards']} non-zero of "
                f"{o['transitions']}); episode ends {o['terminations']}, accuracy {fmt(o['termination_accuracy'], 3)}"
            )
        lines.append(f"  {self.fvd.describe()}")
        lines.append(f"  time             {fmt(self.timings.get('total'), 1)} s")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)
    def to_markdown(self) -> str:
        """The content of ``report.md`` (:func:`worldmodels.eval.markdown.render_markdown`)."""
        from worldmodels.eval.markdown import render_markdown

        return render_markdown(self)

    # ------------------------------------------------------------------ files
    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``report.json``, ``report.md`` and the pictures into ``out_dir`` (created).

        Each file appears atomically (written under a temporary name, then renamed).

        Returns:
            The output directory.
        """
        from worldmodels.data.shards import atomic_output

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        for name, image in self.figures.items():
            with atomic_output(out / name) as tmp:
                image.save(tmp, format="PNG")
            self.files[name] = name
        self.files["report.json"] = "report.json"
        self.files["report.md"] = "report.md"
        self.timings["write"] = time.perf_counter() - start
        with atomic_output(out / "report.md") as tmp:
            tmp.write_text(self.to_markdown())
        with atomic_output(out / "report.json") as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")
        return out
