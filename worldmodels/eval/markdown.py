"""``report.md``: an :class:`~worldmodels.eval.report.EvalReport` as Markdown.

The headline table, Delta_t PSNR per ``t`` (next to the recorded-action baseline where there is
one), few-label mapping, the latent x true action contingency table, pictures, timings and the
settings.
"""

from __future__ import annotations

import json

from worldmodels.eval.report import FIGURE_FILES, PAPER_T, EvalReport, fmt, jsonable, md_cell

__all__ = ["render_markdown"]


def render_markdown(report: EvalReport) -> str:
    """The content of ``report.md``: headline table, Delta_t PSNR per ``t``, contingency table."""
    s = report.settings
    head = report.headline()
    rec = report.reconstruction
    control = report.controllability_dict()
    truth = report.latent_actions["ground_truth"]
    usage = report.latent_actions["usage"]
    tok, lam = report.codebooks["tokenizer"], report.codebooks["lam"]
    assert lam is not None, "the action model's codebook statistics are always measured"
    n = report.controllability.num_clips
    lines = [
        f"# Evaluation report: {md_cell(s.get('model_name') or 'world model')}",
        "",
        f"Checkpoint `{s['checkpoint']}`; data `{s['data']}` (split `{s['split']}`): {s['num_clips']} of "
        f"{s['dataset_clips']} clips of {s['clip_frames']} frames; horizon {s['horizon']}; seed {s['seed']}; "
        f"device {s['device']}; {s['created']}.",
        "",
        "## Headline numbers",
        "",
        "| metric | value | spread / baseline | n |",
        "|---|---|---|---|",
        f"| Reconstruction PSNR (dB) | {fmt(head['recon_psnr'])} | std {fmt(rec['psnr']['std'])}, "
        f"sem {fmt(rec['psnr']['sem'])} | {rec['psnr']['n']} clips |",
        f"| Reconstruction SSIM | {fmt(head['recon_ssim'], 4)} | std {fmt(rec['ssim']['std'], 4)}, "
        f"sem {fmt(rec['ssim']['sem'], 4)} | {rec['ssim']['n']} clips |",
    ]
    if head["delta_psnr_t4"] is not None:
        lines.append(
            f"| Delta_t PSNR at t={PAPER_T} (dB, the paper's) | {fmt(head['delta_psnr_t4'])} | "
            f"std {fmt(head['delta_psnr_t4_std'])}, sem {fmt(head['delta_psnr_t4_sem'])} | {n} clips |"
        )
    else:
        lines.append(
            f"| Delta_t PSNR at t={PAPER_T} (dB, the paper's) | n/a | horizon {report.controllability.horizon} "
            f"< {PAPER_T} | {n} clips |"
        )
    mean_t = control["mean_over_t"]
    lines.append(
        f"| Delta_t PSNR, mean over t=1..{report.controllability.horizon} (dB) | {fmt(mean_t['mean'])} | "
        f"std {fmt(mean_t['std'])}, sem {fmt(mean_t['sem'])} (over clips) | {mean_t['n']} clips |"
    )
    if head["gen_psnr_t4"] is not None:
        lines.append(
            f"| Generated PSNR at t={PAPER_T}, inferred actions (dB) | {fmt(head['gen_psnr_t4'])} | random "
            f"actions {fmt(head['random_psnr_t4'])} | {n} clips |"
        )
    if report.baseline is not None:
        lines.append(
            f"| Recorded-action baseline: Delta_t PSNR at t={PAPER_T} (dB) | "
            f"{fmt(head['baseline_delta_psnr_t4'])} | sem {fmt(head['baseline_delta_psnr_t4_sem'])}; "
            f"generated PSNR {fmt(head['baseline_gen_psnr_t4'])} dB | {n} clips |"
        )
    if truth.get("available"):
        rnd = truth["nmi_random"]
        lines.append(
            f"| Latent-action NMI | {fmt(truth['nmi'], 4)} | random assignment {fmt(rnd['mean'], 4)} "
            f"(std {fmt(rnd['std'], 4)}, {rnd['trials']} shuffles, p={fmt(rnd['p_value'], 3)}) | "
            f"{truth['num_labelled_transitions']} transitions |"
        )
        probe = truth["probe"]
        if probe.get("available"):
            lines.append(
                f"| Probe accuracy (latent -> true action) | {fmt(probe['accuracy'], 4)} | chance (majority) "
                f"{fmt(probe['chance_accuracy'], 4)} | fit {probe['num_fit']} / scored {probe['num_scored']} "
                "transitions |"
            )
        else:
            lines.append(f"| Probe accuracy | n/a | {md_cell(probe['reason'])} | |")
        collapsed = truth.get("collapsed")
        if collapsed:
            crnd = collapsed["nmi_random"]
            lines.append(
                f"| Latent-action NMI, collapsed ({', '.join(collapsed['action_names'])}) | "
                f"{fmt(collapsed['nmi'], 4)} | random assignment {fmt(crnd['mean'], 4)} | "
                f"{collapsed['num_labelled_transitions']} transitions |"
            )
            if head["few_label_k200_collapsed"] is not None:
                lines.append(
                    f"| Few-label mapping, K=200, collapsed | {fmt(head['few_label_k200_collapsed'], 4)} | chance "
                    f"{fmt(head['few_label_chance_collapsed'], 4)} | "
                    f"{collapsed['few_label']['num_scored']} scored transitions |"
                )
        linear = truth.get("linear_probe", {})
        if linear.get("available"):
            lines.append(
                f"| Linear probe (latent vector -> true action) | {fmt(linear['accuracy'], 4)} | chance "
                f"{fmt(linear['chance_accuracy'], 4)}; collapsed {fmt(head['linear_probe_collapsed_accuracy'], 4)} "
                f"vs {fmt(head['linear_probe_collapsed_chance'], 4)} | fit {linear['num_fit']} / scored "
                f"{linear['num_scored']} |"
            )
    else:
        lines.append(f"| Latent-action NMI, probe | n/a | {md_cell(truth['reason'])} | |")
    if report.outcomes.get("available"):
        o = report.outcomes
        lines.append(
            f"| Predicted rewards: correlation with the recorded ones (one step ahead) | "
            f"{fmt(o['reward_correlation'], 4)} | sign accuracy {fmt(o['reward_sign_accuracy'], 4)}, "
            f"{o['nonzero_rewards']} non-zero rewards; episode ends {o['terminations']}, accuracy "
            f"{fmt(o['termination_accuracy'], 4)} | {o['transitions']} transitions |"
        )
    lines += [
        f"| Latent-action usage entropy | {fmt(usage['normalized_entropy'], 3)} of log A | "
        f"{fmt(usage['entropy_nats'], 3)} nats, perplexity {fmt(usage['perplexity'], 2)} of {lam.num_codes} | "
        f"{report.latent_actions['num_transitions']} transitions |",
        "| Tokenizer codebook usage | n/a | continuous latents (no codebook) | |" if tok is None else
        f"| Tokenizer codebook usage | {tok.num_used}/{tok.num_codes} ({100 * tok.usage:.1f}%) | perplexity "
        f"{fmt(tok.perplexity, 1)} | {int(tok.counts.sum())} tokens |",
        f"| LAM codebook usage | {lam.num_used}/{lam.num_codes} ({100 * lam.usage:.1f}%) | perplexity "
        f"{fmt(lam.perplexity, 2)} | {int(lam.counts.sum())} transitions |",
        f"| FVD | {fmt(report.fvd.value) if not report.fvd.skipped else 'skipped'} | "
        f"{md_cell(report.fvd.reason if report.fvd.skipped else report.fvd.describe())} | "
        f"{report.fvd.num_real} real / {report.fvd.num_fake} generated |",
    ]
    if report.notes:
        lines += ["", *[f"> Note: {note}" for note in report.notes]]

    lines += [
        "",
        "## Delta_t PSNR over t",
        "",
        "Generated from the real first frame with the latent actions inferred from the real clip (x^) and with "
        "uniformly random latent actions (x^'); Delta_t PSNR = PSNR(x_t, x^_t) - PSNR(x_t, x^'_t).",
        "",
        "| t | Delta_t PSNR (dB) | std | sem | PSNR inferred | PSNR random |",
        "|---|---|---|---|---|---|",
    ]
    for i, t in enumerate(control["t"]):
        lines.append(
            f"| {t} | {fmt(control['delta_psnr_t'][i], 3)} | {fmt(control['delta_psnr_std_t'][i], 3)} | "
            f"{fmt(control['delta_psnr_sem_t'][i], 3)} | {fmt(control['psnr_inferred_t'][i])} | "
            f"{fmt(control['psnr_random_t'][i])} |"
        )

    if report.baseline is not None:
        base = report.baseline["controllability"]
        lines += [
            "",
            "## Latent actions against recorded actions",
            "",
            f"The same clips, generated by the recorded-action baseline `{md_cell(report.baseline.get('checkpoint'))}` "
            "(the environment's true actions instead of latent ones; random actions drawn from the "
            "environment's actions). The gap between the two Delta_t PSNR columns is what the latent action "
            "model loses; the baseline's own value is what the dynamics achieve with perfect actions.",
            "",
            "| t | latent: Delta_t PSNR | latent: PSNR inferred | recorded: Delta_t PSNR | recorded: PSNR |",
            "|---|---|---|---|---|",
        ]
        for i, t in enumerate(control["t"]):
            if i >= len(base["delta_psnr_t"]):
                break
            lines.append(
                f"| {t} | {fmt(control['delta_psnr_t'][i], 3)} | {fmt(control['psnr_inferred_t'][i])} | "
                f"{fmt(base['delta_psnr_t'][i], 3)} | {fmt(base['psnr_inferred_t'][i])} |"
            )

    lines += ["", "## Latent actions", ""]
    names_by_latent = report.latent_names()
    lines.append(
        "Usage per latent action: "
        + ", ".join(
            f"{a}: {100 * f:.1f}%" + (f" ({names_by_latent[a]})" if names_by_latent else "")
            for a, f in enumerate(usage["fraction"])
        )
        + "."
    )
    if truth.get("available"):
        for label, source in (("raw actions", truth), ("collapsed actions", truth.get("collapsed"))):
            few = (source or {}).get("few_label", {})
            if not few.get("available"):
                continue
            lines += [
                "",
                f"Few-label mapping on {label} (the paper's appendix E: map each latent action by majority vote "
                f"over K labelled transitions of the fit clips, score on the other clips; mean of {few['draws']} "
                f"draws): chance (majority class) {fmt(few['chance_accuracy'], 3)}.",
                "",
                "| K | " + " | ".join(str(k) for k in few["counts"]) + " |",
                "|---" * (len(few["counts"]) + 1) + "|",
                "| accuracy | " + " | ".join(
                    f"{fmt(a, 3)} ± {fmt(sd, 3)}" for a, sd in zip(few["accuracy"], few["accuracy_std"])
                ) + " |",
            ]
    if truth.get("available"):
        names = truth["action_names"]
        table = truth["contingency_table"]
        lines += [
            "",
            "Contingency table: rows are latent actions, columns true actions (transitions with a known true "
            "action).",
            "",
            "| latent \\ true | " + " | ".join(md_cell(name) for name in names) + " | total |",
            "|---" * (len(names) + 2) + "|",
        ]
        for a, row in enumerate(table):
            lines.append(f"| {a} | " + " | ".join(str(v) for v in row) + f" | {sum(row)} |")
        totals = [sum(col) for col in zip(*table)]
        lines.append("| total | " + " | ".join(str(v) for v in totals) + f" | {sum(totals)} |")
        probe = truth["probe"]
        if probe.get("available"):
            lines += [
                "",
                "Probe mapping (latent -> most frequent true action in the fit clips; latent actions unseen "
                "there map to the most frequent true action, marked *): "
                + ", ".join(
                    f"{a} -> {md_cell(name)}{'' if probe['latent_fit_counts'][a] else '*'}"
                    for a, name in enumerate(probe["mapping_names"])
                )
                + ".",
            ]
    else:
        lines += ["", f"No contingency table: {truth['reason']}."]

    if report.files:
        pictures = [name for name in FIGURE_FILES if name in report.files]
        if pictures:
            lines += ["", "## Pictures", ""]
            captions = {
                "reconstruction.png": "real / reconstructed / generated with the inferred actions, over time",
                "latent_actions.png": "each latent action rolled from the same prompt frame",
                "delta_psnr.png": "Delta_t PSNR over t (band: one standard deviation over clips)",
            }
            lines += [f"![{captions[name]}]({name})" for name in pictures]

    lines += ["", "## Timing", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in report.timings.items()]
    lines += ["", "## Settings", "", "```json", json.dumps(jsonable(report.settings), indent=1), "```", ""]
    return "\n".join(lines)
