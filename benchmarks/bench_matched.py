"""The real-time-play issue's matched configuration: training tokens/s and generation frames/s of ``maskgit``.

Every figure is for one MaskGIT dynamics of the size the issue fixes (4 ST blocks, width 128, 4
heads, MLP 4x, 8x8 tokens per frame, 16 frames, vocabulary 512, 8 actions as 32-wide
embeddings), so it can be compared with other implementations measured at the same size:

* train tokens/s: forward, backward and AdamW on batches of 8 clips, the variants stepped in
  alternation: fp32, bf16 autocast, absolute temporal positions, and (unless ``--skip-compile``)
  the loss compiled by ``torch.compile`` (``train.compile=true``);
* frames/s: one frame generated after 15 context frames (batch 1) by the ``maskgit`` sampler with
  8 and 25 steps: streaming (rotary temporal positions; each frame appended to the key/value
  buffers once, the presets' default), prefilling the context every frame (absolute positions,
  the former path), and without a cache; and the stream's frames/s after 16 and after 256
  frames played (a frame's cost must not grow);
* the stream at 8 steps in fp32, with bf16 matmuls in the layers whose shape is faster so, and
  under bf16 autocast, with the bf16 speed-up of each layer shape; and with its blocks compiled
  by ``torch.compile`` (at 8 and 25 steps; ``--skip-compile`` leaves it out);
* peak resident memory of the process after each part;
* how 8-step generation and the training step grow with the context length
  (T = 8, 16, 32) and the tokens per frame (64, 256).

Usage::

    python benchmarks/bench_matched.py --threads 2
    python benchmarks/bench_matched.py --threads 2 --skip-growth --train-steps 3
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import worldmodels  # noqa: E402
from worldmodels.layers.bf16_linear import Bf16Linears, bf16_speedup  # noqa: E402

WIDTH, DEPTH, HEADS, VOCAB, ACTION_DIM, BATCH = 128, 4, 4, 512, 32, 8


def _dynamics(frames: int, grid: int, temporal_pos: str = "rope") -> torch.nn.Module:
    torch.manual_seed(0)
    return worldmodels.build("maskgit", kind="dynamics", vocab_size=VOCAB, token_grid=[grid, grid], max_frames=frames,
                             action_dim=ACTION_DIM, dim=WIDTH, depth=DEPTH, num_heads=HEADS, mlp_ratio=4.0,
                             temporal_pos=temporal_pos)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_tokens_per_s(frames: int, grid: int, steps: int, bf16: bool, temporal_pos: str = "rope") -> float:
    """Tokens/s of forward + backward + AdamW on ``BATCH`` clips (median step of ``steps`` after one warm-up)."""
    return train_alternated(steps, {"one": (temporal_pos, bf16, False)}, frames, grid)["one"]


def train_alternated(steps: int, variants: dict[str, tuple[str, bool, bool]], frames: int = 16,
                     grid: int = 8) -> dict[str, float]:
    """Training tokens/s of several variants stepped in alternation (median of ``steps`` after warm-up).

    Each variant ``name: (temporal_pos, bf16, compiled)``: rotary or absolute temporal positions,
    bf16 autocast or fp32, and the loss compiled by ``torch.compile`` (what ``train.compile=true``
    does; compiling is the warm-up step).
    """
    runs = {}
    for name, (temporal_pos, bf16, compiled) in variants.items():
        dyn = _dynamics(frames, grid, temporal_pos).train()
        loss_fn = torch.compile(lambda t, a, d=dyn: d.loss(t, a)[0]) if compiled else (lambda t, a, d=dyn: d.loss(t, a)[0])
        runs[name] = (torch.optim.AdamW(dyn.parameters(), lr=1e-4), loss_fn, bf16)
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, VOCAB, (BATCH, frames, grid, grid), generator=g)
    actions = torch.randn(BATCH, frames - 1, ACTION_DIM, generator=g)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(steps + 1):
        for name, (opt, loss_fn, bf16) in runs.items():
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(tokens, actions)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i:
                times[name].append(time.perf_counter() - start)
    return {name: BATCH * frames * grid * grid / statistics.median(t) for name, t in times.items()}


@torch.no_grad()
def frames_per_s(frames: int, grid: int, sampler_steps: int, use_cache: bool, repeats: int,
                 temporal_pos: str = "absolute") -> float:
    """Frames/s of one next frame from ``frames - 1`` context frames, prefilled afresh (batch 1), best of ``repeats``."""
    dyn = _dynamics(frames, grid, temporal_pos).eval()
    sampler = worldmodels.build("maskgit", kind="sampler", steps=sampler_steps)
    g = torch.Generator().manual_seed(2)
    context = torch.randint(0, VOCAB, (1, frames - 1, grid, grid), generator=g)
    actions = torch.randn(1, frames - 1, ACTION_DIM, generator=g)
    sampler.sample(dyn, context, actions, generator=g, use_cache=use_cache)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        sampler.sample(dyn, context, actions, generator=g, use_cache=use_cache)
        best = min(best, time.perf_counter() - start)
    return 1.0 / best


COMPILE_SECONDS: dict[str, float] = {}
"""Seconds each variant of the last :func:`stream_frames_per_s` took to warm up (compilation included)."""


@torch.inference_mode()
def stream_frames_per_s(frames: int, grid: int, sampler_steps: int, repeats: int, timed: int = 16,
                        variants: dict[str, tuple[int, str | bool]] | None = None) -> dict[str, float]:
    """Frames/s of a rotary model's stream (each frame appended to the key/value buffers, batch 1).

    Each variant ``name: (played, bf16)`` has its own stream, opened on ``frames - 1`` context
    frames and advanced ``played`` frames before timing; ``bf16`` is ``False`` (fp32), ``"auto"``
    (bf16 matmuls in the layers whose shape is faster so,
    :class:`~worldmodels.layers.bf16_linear.Bf16Linears`), ``True`` (bf16 autocast) or
    ``"compiled"`` (fp32, a copy of the model with the stream's blocks compiled by
    ``torch.compile``, :meth:`~worldmodels.layers.STTransformer.compile_stream`). The variants
    are timed in alternation, ``timed`` frames at a time (sampling and the commit passes
    included), best of ``repeats``: on a shared machine the load moves by tens of percent within
    seconds, and alternating keeps the ratios fair.
    """
    variants = variants or {"fp32": (0, False)}
    dyn = _dynamics(frames, grid, "rope").eval()
    compiled = None
    if "compiled" in {v[1] for v in variants.values()}:  # the same weights, the stream's blocks compiled
        compiled = _dynamics(frames, grid, "rope").eval()
        compiled.compile_inference()
    sampler = worldmodels.build("maskgit", kind="sampler", steps=sampler_steps)
    g = torch.Generator().manual_seed(2)
    context = torch.randint(0, VOCAB, (1, frames - 1, grid, grid), generator=g)
    actions = torch.randn(1, frames - 2, ACTION_DIM, generator=g)
    step_actions = torch.randn(64, 1, ACTION_DIM, generator=g)
    fast = Bf16Linears(dyn, rows=grid * grid)

    def precision(bf16: str | bool) -> contextlib.AbstractContextManager:
        if bf16 == "auto":
            return fast
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 is True)

    def play(stream, n: int) -> None:  # noqa: ANN001
        for i in range(n):
            cache = stream.prepare(step_actions[i % 64])
            stream.push(sampler.sample(stream.dynamics, context, actions, generator=g, cache=cache))

    streams = {}
    for name, (played, bf16) in variants.items():
        with precision(bf16):
            start = time.perf_counter()
            streams[name] = (compiled if bf16 == "compiled" else dyn).open_stream(context, actions, frames - 1)
            play(streams[name], max(played, 2))  # warm-up (and compilation)
            COMPILE_SECONDS[name] = time.perf_counter() - start
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for name, (_, bf16) in variants.items():
            with precision(bf16):
                start = time.perf_counter()
                play(streams[name], timed)
                best[name] = min(best[name], (time.perf_counter() - start) / timed)
    return {name: 1.0 / t for name, t in best.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed generations per row (best kept)")
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument("--skip-compile", action="store_true", help="no torch.compile rows (they compile for minutes)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = sum(p.numel() for p in _dynamics(16, 8).parameters()) / 1e6
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; maskgit dynamics {params:.2f}M parameters: "
          f"{DEPTH} ST blocks, width {WIDTH}, {HEADS} heads, 8x8 tokens, 16 frames, vocabulary {VOCAB}")
    variants = {"rope fp32": ("rope", False, False), "rope bf16 autocast": ("rope", True, False),
                "absolute fp32": ("absolute", False, False)}
    if not args.skip_compile:
        variants["rope fp32, torch.compile"] = ("rope", False, True)
    rates = train_alternated(args.train_steps, variants)
    for name, rate in rates.items():
        print(f"train {name}: {rate:,.0f} tokens/s (batch {BATCH}; {rate / rates['rope fp32']:.2f}x rope fp32)", flush=True)
    print(f"train: peak memory {_peak_mib():.0f} MiB (variants stepped in alternation)", flush=True)
    for steps in (8, 25):
        stream = stream_frames_per_s(16, 8, steps, args.repeats)["fp32"]
        cached = frames_per_s(16, 8, steps, True, args.repeats)
        plain = frames_per_s(16, 8, steps, False, args.repeats)
        print(f"generate, {steps:>2} steps, 15 context frames: {stream:.1f} frames/s streaming (rotary), "
              f"{cached:.1f} prefilling every frame (absolute), {plain:.1f} without a cache; stream/prefill "
              f"{stream / cached:.2f}x, stream/none {stream / plain:.2f}x; peak memory {_peak_mib():.0f} MiB", flush=True)
    rates = stream_frames_per_s(16, 8, 8, args.repeats + 2, timed=8, variants={
        "fp32": (16, False), "auto": (16, "auto"), "autocast": (16, True), "late": (256, False),
        **({} if args.skip_compile else {"compiled": (16, "compiled")})})
    chosen = Bf16Linears(_dynamics(16, 8), rows=64).chosen
    shapes = sorted({(m.in_features, m.out_features, m.bias is not None) for m in _dynamics(16, 8).modules()
                     if isinstance(m, torch.nn.Linear)})
    speedups = ", ".join(f"{i}->{o}{'' if b else ' (no bias)'} {bf16_speedup(i, o, 64, bias=b):.2f}x"
                         for i, o, b in shapes)  # the shapes (and bias) Bf16Linears decided on
    fp32, auto, autocast, late = rates["fp32"], rates["auto"], rates["autocast"], rates["late"]
    print(f"stream, 8 steps, alternated: fp32 {fp32:.1f} frames/s, bf16 where faster {auto:.1f} "
          f"({auto / fp32:.2f}x; {len(chosen)} layers chosen), bf16 autocast {autocast:.1f} ({autocast / fp32:.2f}x); "
          f"bf16 matmul speed-up per layer shape at 64 rows: {speedups}", flush=True)
    print(f"stream, 8 steps, fp32: {fp32:.1f} frames/s after 16 frames played, {late:.1f} after 256 "
          f"(late/early {late / fp32:.2f})", flush=True)
    if "compiled" in rates:
        compiled = rates["compiled"]
        print(f"stream, 8 steps, alternated: torch.compile of the stream's blocks {compiled:.1f} frames/s "
              f"({compiled / fp32:.2f}x eager fp32; {COMPILE_SECONDS['compiled']:.0f} s to compile and warm up)",
              flush=True)
        both = stream_frames_per_s(16, 8, 25, args.repeats, timed=4, variants={"fp32": (2, False),
                                                                              "compiled": (2, "compiled")})
        print(f"stream, 25 steps, alternated: compiled {both['compiled']:.1f} frames/s, eager {both['fp32']:.1f} "
              f"({both['compiled'] / both['fp32']:.2f}x)", flush=True)
    if args.skip_growth:
        return 0
    print("\ngrowth (8 steps; streaming, and prefilling every frame; training fp32, rotary):")
    print(f"{'T':>3}  {'tokens/frame':>12}  {'stream f/s':>10}  {'prefill f/s':>11}  {'train tokens/s':>15}")
    for frames, grid in ((8, 8), (16, 8), (32, 8), (16, 16)):
        fps = stream_frames_per_s(frames, grid, 8, args.repeats, timed=8)["fp32"]
        prefill = frames_per_s(frames, grid, 8, True, args.repeats)
        tps = train_tokens_per_s(frames, grid, max(2, args.train_steps // 2), False)
        print(f"{frames:>3}  {grid * grid:>12}  {fps:>10.1f}  {prefill:>11.1f}  {tps:>15,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
