"""``worldmodels demo``: record a data set, train every stage, evaluate and play, into one folder."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldmodels demo``."""
    parser.add_argument("--out", default="demo_out", help="output folder (default ./demo_out); rerun to resume")
    parser.add_argument("--recipe", default=None, help="training recipe (default coinrun-cpu, from the Genie plug-in)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "overrides", nargs="*",
        help="config overrides, e.g. train.per_stage.dynamics.steps=200 demo.record.episodes=50",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where the results are."""
    import torch

    from worldmodels.demo import DEFAULT_RECIPE, run_demo

    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_demo(args.out, args.overrides, recipe=args.recipe or DEFAULT_RECIPE)
    h = result.headline
    total = sum(result.seconds.values())
    print()
    print(f"Done in {total / 60:.1f} min ({', '.join(f'{k} {v / 60:.1f}' for k, v in result.seconds.items())}).")
    print(f"  on {h.get('num_clips')} held-out clips: reconstruction {_num(h.get('recon_psnr'))} dB PSNR, SSIM "
          f"{_num(h.get('recon_ssim'), 3)}; generated PSNR at t=4 {_num(h.get('gen_psnr_t4'))} dB")
    baseline = h.get("baseline_delta_psnr_t4")
    print(f"  Delta_t PSNR (t=4): {_num(h.get('delta_psnr_t4'))} dB (sem {_num(h.get('delta_psnr_t4_sem'))})"
          + (f"; recorded-action baseline {_num(baseline)} dB" if baseline is not None else ""))
    raw = f"NMI {_num(h.get('nmi'), 3)} against the true actions (random {_num(h.get('nmi_random'), 3)})"
    if h.get("nmi_collapsed") is not None:
        print(f"  latent actions: NMI {_num(h.get('nmi_collapsed'), 3)} against the collapsed true actions (random "
              f"assignment {_num(h.get('nmi_collapsed_random'), 3)}), few-label mapping K=200 "
              f"{_num(h.get('few_label_k200_collapsed'), 3)} vs chance {_num(h.get('few_label_chance_collapsed'), 3)}; "
              f"raw {raw}")
    elif h.get("nmi") is not None:
        print(f"  actions: {raw}")
    if h.get("reward_correlation") is not None:
        print(f"  predicted rewards: correlation {_num(h.get('reward_correlation'), 3)} with the recorded ones")
    print(f"  report:          {result.report}")
    print(f"  pictures:        {result.report.parent}")
    print(f"  played GIF:      {result.play}")
    print(f"  latent actions:  {result.latent_actions}")
    print(f"  trained model:   {result.model}  (worldmodels play {result.model} --prompt IMAGE)")
    return 0


def _num(value: object, digits: int = 2) -> str:
    from worldmodels.eval.report import fmt

    return fmt(float(value), digits) if isinstance(value, (int, float)) else "n/a"  # never "-0.00"
