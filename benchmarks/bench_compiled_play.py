"""A trained world played headless, eager against ``torch.compile``, alternated in one process.

Two :class:`~worldmodels.envs.WorldModelEnv` over two copies of the same checkpoint, one compiled
(:func:`~worldmodels.envs.compile_world_model`: a streaming ``maskgit`` compiles its stream's
blocks, the tokenizer its decoder), both reset from the same prompt and stepped in alternating
rounds of ``--frames`` steps (cycling through the latent actions) after a warm-up that pays for
the compilation. Printed: the warm-up's seconds, frames/s of each per round, the median of each
and their ratio, the per-step dynamics and decode times, and whether both played the same
frames (compiled kernels round differently, so sampled tokens may part after a while).

Usage::

    python benchmarks/bench_compiled_play.py demo_out/run/dynamics/final --threads 2
    python benchmarks/bench_compiled_play.py demo_out/run/dynamics/final --precision auto --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worldmodels.envs import WorldModelEnv  # noqa: E402
from worldmodels.envs.world_model_env import load_world_model  # noqa: E402

PRECISIONS = {"fp32": False, "auto": "auto", "bf16": True}


def _round(env: WorldModelEnv, frames: int, start: int) -> tuple[float, float, float, list[np.ndarray]]:
    """Frames/s over ``frames`` steps, mean dynamics and decode ms, and the frames."""
    dynamics, decode, shown = [], [], []
    begin = time.perf_counter()
    for i in range(start, start + frames):
        shown.append(env.step(i % env.num_actions)[0])
        dynamics.append(env.last_timings["dynamics_s"])
        decode.append(env.last_timings["decode_s"])
    return frames / (time.perf_counter() - begin), 1e3 * statistics.mean(dynamics), 1e3 * statistics.mean(decode), shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a trained world (e.g. demo_out/run/dynamics/final)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--frames", type=int, default=60, help="steps per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=8, help="steps before timing (compilation happens here)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = PRECISIONS[args.precision]
    envs = {"eager": WorldModelEnv(load_world_model(args.checkpoint), bf16=bf16),
            "compiled": WorldModelEnv(load_world_model(args.checkpoint), bf16=bf16, compile=True)}
    warm = {}
    for name, env in envs.items():
        start = time.perf_counter()
        env.reset(seed=0)
        for i in range(args.warmup):
            env.step(i % env.num_actions)
        warm[name] = time.perf_counter() - start
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, precision {args.precision}; "
          f"{args.checkpoint}; warm-up of {args.warmup} steps: eager {warm['eager']:.1f} s, "
          f"compiled {warm['compiled']:.1f} s", flush=True)
    rates: dict[str, list[float]] = {name: [] for name in envs}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in envs}
    same = True
    for r in range(args.rounds):
        shown = {}
        for name, env in envs.items():
            fps, dyn_ms, dec_ms, shown[name] = _round(env, args.frames, args.warmup + r * args.frames)
            rates[name].append(fps)
            times[name].append((dyn_ms, dec_ms))
        same = same and all(np.array_equal(a, b) for a, b in zip(shown["eager"], shown["compiled"]))
        print(f"round {r + 1}: eager {rates['eager'][-1]:.1f} frames/s, compiled {rates['compiled'][-1]:.1f}",
              flush=True)
    eager, compiled = statistics.median(rates["eager"]), statistics.median(rates["compiled"])
    for name in envs:
        dyn_ms = statistics.median(t[0] for t in times[name])
        dec_ms = statistics.median(t[1] for t in times[name])
        print(f"{name}: median {statistics.median(rates[name]):.1f} frames/s (dynamics {dyn_ms:.1f} ms, "
              f"decode {dec_ms:.1f} ms per step)")
    print(f"compiled / eager: {compiled / eager:.2f}x; same frames in every round: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
