"""Interactive play speed: frames/s of :class:`~worldmodels.envs.WorldModelEnv` with and without the KV cache.

For each preset (random weights: speed does not depend on training) and each number of MaskGIT
steps, two environments over the same model, one using the dynamics' key/value cache and one not,
are stepped alternately from a full context window (the prompt is ``num_frames`` random frames,
so every timed step slides the window, the steady state of a long session). Alternating keeps
the ratio fair on a shared, noisy machine. Printed per row: frames/s cached and uncached, the
speed-up, and the per-step breakdown (dynamics = all MaskGIT iterations, decode = the newest
frame) of the cached env; tokenizing happens once per reset and is printed once per preset.

A second table varies what is decoded per frame (the full window vs one frame), how many past
frames the dynamics sees, bf16 autocast and torch.compile, all with the cache.

Usage::

    python benchmarks/bench_play.py                          # genie-tiny and genie-small on the CPU
    python benchmarks/bench_play.py --presets genie-tiny --frames 20
    python benchmarks/bench_play.py --device cuda --frames 30 --compile

Uncached genie-small on a CPU costs minutes per frame at 25 steps; the default frame counts
are sized for a 2-core machine (``--small-frames``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import worldmodels  # noqa: E402
from worldmodels.envs import WorldModelEnv  # noqa: E402


def _steps_of(env: WorldModelEnv, actions: list[int]) -> tuple[float, dict[str, float]]:
    """Total seconds of ``env.step`` over ``actions`` and the mean of each stage."""
    total, stages = 0.0, {"dynamics_s": [], "decode_s": []}
    for action in actions:
        start = time.perf_counter()
        env.step(action)
        total += time.perf_counter() - start
        for key in stages:
            stages[key].append(env.last_timings[key])
    return total, {k: statistics.mean(v) for k, v in stages.items()}


def _fresh_env(model: worldmodels.WorldModel, prompt: torch.Tensor, seed: int, **kwargs) -> tuple[WorldModelEnv, float]:
    env = WorldModelEnv(model, **kwargs)
    env.reset(seed=seed, options={"prompt": prompt})
    return env, env.last_timings["tokenize_s"]


def bench_cache(
    model, prompt, steps: int, frames: int, warmup: int, device: str, uncached: bool = True
) -> dict[str, float]:
    """Cached vs uncached, stepped alternately, ``frames`` timed steps each (``uncached=False``: cached only)."""
    model.sampler.steps = steps
    envs = {"cached": _fresh_env(model, prompt, 0, device=device)[0]}
    tokenize_s = envs["cached"].last_timings["tokenize_s"]
    if uncached:
        envs["uncached"] = _fresh_env(model, prompt, 0, device=device, use_cache=False)[0]
    num_actions = model.num_actions
    for i in range(warmup):
        for env in envs.values():
            env.step(i % num_actions)
    times = {name: 0.0 for name in envs}
    stage_rows = []
    for i in range(frames):
        action = [(i * 3 + 1) % num_actions]
        for name, env in envs.items():
            t, stages = _steps_of(env, action)
            times[name] += t
            if name == "cached":
                stage_rows.append(stages)
    same = bool(torch.equal(envs["cached"].context_tokens, envs["uncached"].context_tokens)) if uncached else None
    return {
        "cached_fps": frames / times["cached"],
        "uncached_fps": frames / times["uncached"] if uncached else float("nan"),
        "dynamics_ms": 1e3 * statistics.mean(r["dynamics_s"] for r in stage_rows),
        "decode_ms": 1e3 * statistics.mean(r["decode_s"] for r in stage_rows),
        "tokenize_ms": 1e3 * tokenize_s,
        "same_tokens": same,
    }


def bench_variant(model, prompt, steps: int, frames: int, warmup: int, device: str, **kwargs) -> dict[str, float]:
    """Frames/s of one cached configuration."""
    model.sampler.steps = steps
    env, _ = _fresh_env(model, prompt, 0, device=device, **kwargs)
    for i in range(warmup):
        env.step(i % model.num_actions)
    total, stages = _steps_of(env, [(i * 3 + 1) % model.num_actions for i in range(frames)])
    return {"fps": frames / total, "dynamics_ms": 1e3 * stages["dynamics_s"], "decode_ms": 1e3 * stages["decode_s"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="genie-tiny,genie-small")
    parser.add_argument("--maskgit-steps", default="1,8,25")
    parser.add_argument("--frames", type=int, default=10, help="timed frames per configuration (genie-tiny)")
    parser.add_argument("--small-frames", type=int, default=1,
                        help="timed frames per configuration for presets other than genie-tiny")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--uncached-max-steps", type=int, default=None,
                        help="time the uncached path only up to this many MaskGIT steps for presets other than "
                             "genie-tiny (it costs a full forward pass per step)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (inductor) in the variants")
    parser.add_argument("--skip-variants", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps_list = [int(s) for s in args.maskgit_steps.split(",")]
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        model = worldmodels.build(preset, device=args.device).eval()
        frames = args.frames if preset == "genie-tiny" else args.small_frames
        warmup = args.warmup if preset == "genie-tiny" else min(args.warmup, 1)
        prompt = torch.rand(model.num_frames, model.in_channels, *model.image_size)
        h, w = model.token_grid
        print(f"\n{preset}: {model.image_size[0]}x{model.image_size[1]} frames, {h}x{w} tokens, context "
              f"{model.num_frames} frames, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters; "
              f"{frames} timed frames per row, full context window")
        print(f"{'maskgit steps':>13} {'cached f/s':>11} {'uncached f/s':>13} {'speed-up':>9} "
              f"{'dynamics ms':>12} {'decode ms':>10} {'same tokens':>12}")
        tokenize_ms = None
        for steps in steps_list:
            limit = args.uncached_max_steps if preset != "genie-tiny" else None
            r = bench_cache(model, prompt, steps, frames, warmup, args.device, uncached=limit is None or steps <= limit)
            tokenize_ms = r["tokenize_ms"]
            timed = r["same_tokens"] is not None
            uncached_fps = f"{r['uncached_fps']:.2f}" if timed else "(skipped)"
            ratio = f"{r['cached_fps'] / r['uncached_fps']:.1f}x" if timed else "-"
            print(f"{steps:>13} {r['cached_fps']:>11.2f} {uncached_fps:>13} {ratio:>9} {r['dynamics_ms']:>12.1f} "
                  f"{r['decode_ms']:>10.1f} {str(r['same_tokens']) if timed else '-':>12}", flush=True)
        print(f"  tokenize (once per reset, {model.num_frames}-frame prompt): {tokenize_ms:.1f} ms")
        if args.skip_variants:
            continue
        variants: list[tuple[str, dict]] = [
            ("cache, decode window = num_frames (default)", {}),
            ("cache, decode window = 1", {"decode_window": 1}),
            ("cache, context 7 frames", {"context_frames": 7}),
            ("cache, context 7 frames, decode window = 1", {"context_frames": 7, "decode_window": 1}),
            ("cache, bf16 autocast", {"bf16": True}),
            ("cache, bf16, context 7 frames, decode window = 1",
             {"bf16": True, "context_frames": 7, "decode_window": 1}),
        ]
        if args.compile:
            variants.append(("cache, torch.compile (inductor)", {"compile": "inductor"}))
        steps = 8 if 8 in steps_list else steps_list[0]
        print(f"  variants at {steps} MaskGIT steps:")
        for name, kwargs in variants:
            extra_warmup = 3 if "compile" in kwargs else 0
            r = bench_variant(model, prompt, steps, frames, warmup + extra_warmup, args.device, **kwargs)
            print(f"    {name:<52} {r['fps']:>7.2f} frames/s  (dynamics {r['dynamics_ms']:.1f} ms, "
                  f"decode {r['decode_ms']:.1f} ms)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
