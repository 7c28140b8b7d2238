"""``worldmodels eval``: every evaluation metric on a held-out split, written as a report.

Examples::

    worldmodels eval runs/coinrun --data data/coinrun                 # RUN/dynamics/final, split test
    worldmodels eval runs/coinrun/dynamics/final --data data/coinrun --max-clips 128 --horizon 8
    worldmodels eval MODEL_DIR --data videos/ --split all --fvd-weights i3d_kinetics400.safetensors

``CHECKPOINT`` is a ``WorldModel.save_pretrained`` directory (a training checkpoint
``RUN/<stage>/checkpoints/step-N`` works too) or a training run directory, of which
``RUN/dynamics/final`` (else the most recently written ``RUN/<stage>/final``) is evaluated. The
report (``report.json``, ``report.md`` and three PNG pictures) goes to ``--out``, by default
``CHECKPOINT/eval`` (``RUN/eval`` for a run directory).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldmodels eval``."""
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a WorldModel checkpoint directory, or a training run directory (RUN/dynamics/final "
                             "is used, else the latest RUN/<stage>/final)")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="held-out data: a recorded data set (shards + manifest.json) or a directory of videos")
    parser.add_argument("--split", default="test",
                        help="split of a recorded data set (default: test); 'all' uses every file, which a "
                             "directory of plain videos needs")
    parser.add_argument("--max-clips", type=int, default=64, metavar="N",
                        help="clips to evaluate, spread evenly over the split (default 64; 0 for all)")
    parser.add_argument("--horizon", type=int, default=None, metavar="H",
                        help="frames generated per clip for Delta_t PSNR (default: the model's num_frames - 1; "
                             "the paper reports t=4, so H >= 4)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="clips per forward pass (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random actions and the sampler (default 0)")
    parser.add_argument("--fvd-weights", metavar="PATH",
                        help="local Kinetics-400 I3D weights (.safetensors or .pt) for FVD; without them FVD is "
                             "skipped (nothing is downloaded)")
    parser.add_argument("--out", metavar="DIR",
                        help="where to write the report (default: CHECKPOINT/eval)")
    parser.add_argument("--sampler-steps", "--maskgit-steps", dest="sampler_steps", type=int, metavar="K",
                        help="override the sampler's iterations per frame (fewer is faster, and changes the numbers)")
    parser.add_argument("--baseline", metavar="CHECKPOINT",
                        help="a recorded-action model (e.g. the demo's OUT/baseline) evaluated on the same clips and "
                             "reported beside the model")
    parser.add_argument("--device", default=None, help="torch device (default: cpu)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary, not the progress lines")


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the summary and where the report went; returns the exit status.

    Errors the user can fix (a missing data directory, an impossible horizon, ...) print one
    line and return 2; a missing or broken checkpoint raises
    :class:`~worldmodels.checkpoint.CheckpointError`, which the command line turns into exit 2.
    """
    try:
        return _run(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"worldmodels eval: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from worldmodels.checkpoint import resolve_model_dir as resolve_checkpoint
    from worldmodels.eval.evaluation import evaluate

    for flag, value, least in (("--max-clips", args.max_clips, 0), ("--batch-size", args.batch_size, 1),
                               ("--horizon", args.horizon, 1), ("--sampler-steps", args.sampler_steps, 1)):
        if value is not None and value < least:
            raise ValueError(f"{flag} must be at least {least}, got {value}.")
    checkpoint = resolve_checkpoint(args.checkpoint)
    baseline = resolve_checkpoint(args.baseline) if args.baseline else None
    if not Path(args.data).exists():
        raise FileNotFoundError(
            f"--data {args.data} does not exist; pass a recorded data set (worldmodels record ... --out DIR) "
            "or a directory of videos."
        )
    split = None if args.split.lower() in ("all", "none", "") else args.split
    data = Path(args.data)
    if split is not None and not (data / "manifest.json").is_file() and not any(data.rglob("manifest.json")):
        raise ValueError(
            f"--split {split} selects part of a recorded data set (a directory with manifest.json), but {data} holds "
            "none; pass --split all to evaluate every video file in it."
        )
    out = Path(args.out) if args.out else Path(args.checkpoint) / "eval"
    overrides = {"sampler": {"steps": args.sampler_steps}} if args.sampler_steps is not None else None
    log = None if args.quiet else (lambda line: print(f"[eval] {line}", file=sys.stderr, flush=True))
    if log is not None and checkpoint != Path(args.checkpoint):
        log(f"evaluating {checkpoint}")
    report = evaluate(
        checkpoint,
        args.data,
        split=split,
        max_clips=args.max_clips or None,
        horizon=args.horizon,
        batch_size=args.batch_size,
        seed=args.seed,
        fvd_weights=args.fvd_weights,
        out_dir=out,
        device=args.device,
        model_overrides=overrides,
        baseline=baseline,
        log=log,
    )
    print(report.summary())
    print(f"report: {out / 'report.md'} (numbers: report.json; pictures: "
          f"{', '.join(name for name in report.files if name.endswith('.png'))})")
    return 0
