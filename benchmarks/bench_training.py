"""Training throughput per stage: eager fp32 vs bf16 autocast vs torch.compile.

Runs the real trainer step (:meth:`worldmodels.training.Trainer.train_step`: forward, backward,
gradient clipping, AdamW, schedule) on fixed synthetic clips and prints seconds per step,
frames/s and tokens/s per stage and mode, with each mode's speed relative to eager fp32.

    python benchmarks/bench_training.py                         # genie-tiny if installed, else toy-world
    python benchmarks/bench_training.py --preset genie-small --batch-size 8 --device cuda
    python benchmarks/bench_training.py --stages tokenizer --modes eager,bf16 --num-frames 4

Measured facts to keep in mind on CPU: bf16 autocast helps only once the matrix products are
large (and 3-D inputs to ``nn.Linear`` can hit a slow path under CPU autocast); compiling
costs minutes on the first steps, which the warm-up steps absorb but do not report.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

MODES = {
    "eager": dict(precision="fp32", compile=False),
    "bf16": dict(precision="bf16", compile=False),
    "compile": dict(precision="fp32", compile=True),
    "compile+bf16": dict(precision="bf16", compile=True),
}


def _default_preset() -> str:
    from worldmodels import list_components

    presets = list_components("model")
    return "genie-tiny" if "genie-tiny" in presets else "toy-world"


def _register_toy() -> None:
    tests = Path(__file__).resolve().parent.parent / "tests"
    sys.path.insert(0, str(tests))
    import toy_components  # noqa: F401  (registers toy-world)


def bench_stage(preset: str, stage: str, mode: str, args: argparse.Namespace) -> dict[str, float]:
    """Seconds per step of one stage in one mode (median over the timed steps)."""
    from worldmodels import resolve_model_config
    from worldmodels.data.synthetic import SyntheticClipDataset
    from worldmodels.training import TrainConfig, Trainer
    from worldmodels.training.checkpointing import seed_everything
    from worldmodels.training.data import collate_clips
    from worldmodels.world_model import WorldModel

    overrides = {"num_frames": args.num_frames} if args.num_frames else {}
    seed_everything(0)
    model = WorldModel.from_config(resolve_model_config(preset, **overrides))
    with tempfile.TemporaryDirectory() as run_dir:
        if stage == "dynamics":  # the stage wants a trained tokenizer; its weights do not change the speed
            model.save_pretrained(Path(run_dir) / "tokenizer" / "final")
        cfg = TrainConfig(stage=stage, steps=10_000, batch_size=args.batch_size, warmup=10, run_dir=run_dir,
                          progress=False, tensorboard=False, checkpoint_every=0, image_every=0, device=args.device,
                          **MODES[mode])
        data = SyntheticClipDataset(args.batch_size, model.num_frames, model.image_size)
        trainer = Trainer(model, cfg, data)
        trainer.setup()
        batch = collate_clips([data[i] for i in range(args.batch_size)])
        device = trainer.ctx.device  # type: ignore[union-attr]

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        for _ in range(args.warmup_steps):
            trainer.train_step([batch])
        sync()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            trainer.train_step([batch])
            sync()
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    frames = args.batch_size * model.num_frames
    h, w = model.token_grid
    return {"s_per_step": seconds, "frames_per_s": frames / seconds, "tokens_per_s": frames * h * w / seconds}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run every stage x mode, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None,
                        help="model preset (default: genie-tiny if registered, else toy-world)")
    parser.add_argument("--stages", default="tokenizer,lam,dynamics")
    parser.add_argument("--modes", default="eager,bf16,compile", help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--num-frames", type=int, default=None, help="override the preset's num_frames")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first (compilation happens here)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    _register_toy()
    preset = args.preset or _default_preset()
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; choose from {list(MODES)}")
    print(f"preset {preset}, batch {args.batch_size}, num_frames {args.num_frames or 'preset'}, device {args.device}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'stage':<10} {'mode':<13} {'s/step':>9} {'frames/s':>10} {'tokens/s':>11} {'vs eager':>9}")
    for stage in [s for s in args.stages.split(",") if s]:
        eager = None
        for mode in modes:
            try:
                r = bench_stage(preset, stage, mode, args)
            except Exception as exc:  # report and go on: one mode failing must not hide the others
                print(f"{stage:<10} {mode:<13} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
                continue
            if mode == "eager":
                eager = r["s_per_step"]
            ratio = f"{eager / r['s_per_step']:.2f}x" if eager else "-"
            print(f"{stage:<10} {mode:<13} {r['s_per_step']:>9.3f} {r['frames_per_s']:>10.1f} "
                  f"{r['tokens_per_s']:>11.0f} {ratio:>9}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
