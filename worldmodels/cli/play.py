"""``worldmodels play``: play a learned world in a window, or headless into a GIF or MP4 file.

Examples::

    worldmodels play runs/coinrun/model --prompt level.png                  # the window
    worldmodels play runs/coinrun/model --prompt level.png --actions 3,3,1,1 --out run.gif
    worldmodels play genie-tiny --actions 0,1,2 --steps 30 --out run.mp4 --sampler-steps 8

Latent actions are numbered ``0 .. A-1`` (in the window, key ``k`` plays action ``k-1``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_BF16: dict[str, bool | str] = {"auto": "auto", "fp32": False, "bf16": True}
"""``--precision`` -> :class:`~worldmodels.envs.WorldModelEnv`'s ``bf16``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``worldmodels play``."""
    parser.add_argument("source", metavar="CHECKPOINT_OR_PRESET",
                        help="a checkpoint directory (WorldModel.save_pretrained) or a preset name (random weights)")
    parser.add_argument("--prompt", metavar="IMAGE",
                        help="the first frame: any image file, resized to the model's size (default: a black frame)")
    parser.add_argument("--actions", metavar="A,A,...",
                        help="latent action indices 0..A-1 to play headless (no window), e.g. 3,3,1")
    parser.add_argument("--out", metavar="FILE",
                        help="headless: the .gif or .mp4 to write (required); window: where S saves the GIF")
    parser.add_argument("--steps", type=int, metavar="N",
                        help="headless: frames to generate, cycling through --actions (default: one per action); "
                             "window: quit after N frames")
    parser.add_argument("--sampler-steps", "--maskgit-steps", dest="sampler_steps", type=int, metavar="K",
                        help="the sampler's steps per frame (MaskGIT iterations for Genie)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto (default): bf16 matmuls only in the dynamics layers whose shape runs faster in bf16 "
                             "on this machine (measured at start); fp32; bf16: everything under bf16 autocast")
    parser.add_argument("--bf16", action="store_const", const="bf16", dest="precision",
                        help="the same as --precision bf16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the dynamics and tokenizer")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--no-cache", action="store_true",
                        help="do not use the dynamics' key/value cache (same frames, slower; for comparison)")
    parser.add_argument("--decode-window", type=int, metavar="W",
                        help="token frames decoded to show the newest (default: the model's num_frames; 1 is fastest)")
    parser.add_argument("--context-frames", type=int, metavar="N",
                        help="past frames the dynamics sees (default: the model's num_frames - 1; fewer is faster)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch (default: torch's; 1 is often fastest on a busy shared machine)")
    parser.add_argument("--fps", type=float, default=15.0, help="frame rate of written files (default 15)")
    parser.add_argument("--scale", type=int, default=None,
                        help="integer upscaling: of written files (default 1) or on screen (default 6)")
    parser.add_argument("--eval-report", metavar="REPORT_JSON", default=None,
                        help="name latent actions after the true actions in this `worldmodels eval` report "
                             "(default: CHECKPOINT/eval/report.json or one in a parent folder, if any)")
    parser.add_argument("--legend-steps", type=int, default=4,
                        help="window: steps rolled per action to label what it does (default 4)")
    parser.add_argument("--device", default=None, help="torch device (default: cpu)")


def run(args: argparse.Namespace) -> int:
    """Play headless when ``--actions`` is given, else open the window; returns the exit status."""
    from worldmodels.envs.prompts import PromptError

    try:
        return _run(args)
    except (FileNotFoundError, PromptError, ValueError) as exc:
        print(f"worldmodels play: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from worldmodels.envs.world_model_env import WorldModelEnv, load_world_model, prompt_to_video
    from worldmodels.play.export import output_format
    from worldmodels.play.headless import parse_actions, play_headless

    headless = args.actions is not None
    if headless and not args.out:
        raise ValueError("Headless play (--actions) writes a file: add --out run.gif or --out run.mp4.")
    if args.out:
        output_format(args.out)
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}.")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}.")
        import torch

        torch.set_num_threads(args.threads)
    model = load_world_model(args.source, device=args.device, sampler_steps=args.sampler_steps)
    prompt = prompt_to_video(args.prompt, model.image_size, model.in_channels, model.num_frames)
    env = WorldModelEnv(
        model,
        prompt=prompt,
        use_cache=not args.no_cache,
        bf16=_BF16[args.precision],
        compile=args.compile,
        decode_window=args.decode_window,
        context_frames=args.context_frames,
    )
    if headless:
        actions = parse_actions(args.actions, env.num_actions)
        steps = args.steps if args.steps is not None else len(actions)
        actions = [actions[i % len(actions)] for i in range(steps)]
        start = time.perf_counter()
        path = play_headless(env, actions, args.out, seed=args.seed, fps=args.fps, scale=args.scale or 1)
        elapsed = time.perf_counter() - start
        print(f"wrote {path}: {len(actions) + 1} frames ({len(actions)} generated in {elapsed:.1f} s, "
              f"{len(actions) / max(elapsed, 1e-9):.1f} frames/s including the prompt and the file)")
        return 0

    from worldmodels.play.legend import action_legend, arrow_bindings
    from worldmodels.play.window import PlayWindow

    checkpoint = args.source if Path(args.source).is_dir() else None
    legend = action_legend(model, prompt, checkpoint=checkpoint, report=args.eval_report,
                           steps=max(1, args.legend_steps), seed=args.seed)
    window = PlayWindow(
        env,
        legend=legend,
        arrows=arrow_bindings(legend, env.num_actions),
        seed=args.seed,
        scale=args.scale or 6,
        save_path=args.out,
        fps=args.fps,
        title=f"worldmodels play {args.source}",
    )
    window.run(max_steps=args.steps)
    for path in window.saved:
        print(f"saved {path}")
    print(f"played {window.steps_played} frames")
    return 0
