"""Batched learned worlds: frames/s of :class:`~worldmodels.envs.WorldModelVectorEnv` at B = 1, 16, 64.

Each row steps ``B`` worlds of one model (random weights: speed does not depend on training) from
a full context window (prompts of ``num_frames`` random frames, so every timed step slides the
window) and prints the frames generated per second in total and per world. For the middle ``B``
the same run also steps ``B`` separate :class:`~worldmodels.envs.WorldModelEnv` one after the
other, interleaved with the batched env step for step, and prints the speed-up of batching.

Usage::

    python benchmarks/bench_vector_env.py --threads 2                 # genie-tiny, B = 1, 16, 64
    python benchmarks/bench_vector_env.py --preset genie-tiny --batches 1,4,16 --frames 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import worldmodels  # noqa: E402
from worldmodels.envs import WorldModelEnv, WorldModelVectorEnv  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="genie-tiny")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--frames", type=int, default=4, help="timed steps per row")
    parser.add_argument("--sampler-steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "auto"), default="fp32",
                        help="auto: bf16 only where it makes a step faster (the environments' bf16='auto')")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = worldmodels.build(args.preset, device=args.device).eval()
    if args.sampler_steps:
        model.sampler.steps = args.sampler_steps
    batches = [int(b) for b in args.batches.split(",")]
    rng = np.random.default_rng(0)
    h, w = model.image_size
    steps = model.sampler.get_config().get("steps")
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}; {args.preset}: "
          f"{h}x{w} frames, {model.num_frames}-frame context, sampler steps {steps}; {args.frames} timed steps per row; "
          f"precision {args.precision}")
    print(f"{'B':>4}  {'frames/s total':>15}  {'frames/s per world':>19}  {'B single envs, frames/s':>24}  {'speed-up':>8}")
    compare = batches[len(batches) // 2]
    for b in batches:
        prompts = [rng.integers(0, 256, (model.num_frames, h, w, 3), dtype=np.uint8) for _ in range(b)]
        bf16 = "auto" if args.precision == "auto" else False
        envs = WorldModelVectorEnv(model, num_envs=b, bf16=bf16)
        envs.reset(seed=0, options={"prompts": prompts})
        singles: list[WorldModelEnv] = []
        if b == compare:
            singles = [WorldModelEnv(model, bf16=bf16) for _ in range(b)]
            for env, prompt in zip(singles, prompts):
                env.reset(seed=0, options={"prompt": prompt})
        envs.step(rng.integers(0, model.num_actions, b))  # warm-up
        batched = single = 0.0
        for _ in range(args.frames):
            actions = rng.integers(0, model.num_actions, b)
            start = time.perf_counter()
            envs.step(actions)
            batched += time.perf_counter() - start
            if singles:
                start = time.perf_counter()
                for env, action in zip(singles, actions):
                    env.step(int(action))
                single += time.perf_counter() - start
        total = b * args.frames / batched
        row = f"{b:>4}  {total:>15.1f}  {total / b:>19.2f}"
        if singles:
            separate = b * args.frames / single
            row += f"  {separate:>24.1f}  {total / separate:>7.2f}x"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
