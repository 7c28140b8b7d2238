"""Build a world model, generate frames from a prompt under chosen latent actions, save a GIF.

Without ``--checkpoint`` the model is the ``genie-tiny`` preset with random weights: the frames
are noise, but every step of the pipeline runs (tokenize the prompt, sample each next frame
with MaskGIT, decode). With a trained model (``worldmodels demo`` writes one to
``demo_out/run/dynamics/final``) the frames follow the latent actions.

    python examples/build_and_sample.py                                  # genie-tiny, random weights
    python examples/build_and_sample.py --checkpoint demo_out/run/dynamics/final \\
        --prompt level.png --actions 0,0,0,3,3,3 --out sample.gif
    python examples/build_and_sample.py --tiny                           # a few seconds

The prompt is any image file (resized to the model's frame size); by default it is a frame of
the library's moving-sprite world.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import worldmodels
from worldmodels.data.synthetic import moving_sprites
from worldmodels.envs import prompt_to_video
from worldmodels.play.export import save_generation


def load_model(checkpoint: str | None, preset: str, sampler_steps: int | None) -> worldmodels.WorldModel:
    """A trained model from ``checkpoint``, else ``preset`` with random weights."""
    overrides = {} if sampler_steps is None else {"sampler": {"steps": sampler_steps}}
    if checkpoint:
        return worldmodels.WorldModel.from_pretrained(checkpoint, **overrides).eval()
    model = worldmodels.build(preset, **overrides)
    assert isinstance(model, worldmodels.WorldModel)
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a WorldModel.save_pretrained directory (default: random weights)")
    parser.add_argument("--preset", default="genie-tiny", help="preset to build without --checkpoint")
    parser.add_argument("--prompt", help="an image file for the first frame (default: a sprite-world frame)")
    parser.add_argument("--actions", default="0,1,2,3,4,5,6,7", help="latent actions, cycled (default 0..7)")
    parser.add_argument("--frames", type=int, default=16, help="frames to generate (default 16)")
    parser.add_argument("--sampler-steps", type=int, help="MaskGIT iterations per frame (default: the model's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="sample.gif", help="the GIF (or .mp4) to write")
    parser.add_argument("--tiny", action="store_true", help="3 frames with 2 MaskGIT steps: runs in seconds")
    args = parser.parse_args(argv)
    if args.tiny:
        args.frames, args.sampler_steps = 3, 2

    torch.manual_seed(args.seed)
    model = load_model(args.checkpoint, args.preset, args.sampler_steps)
    h, w = model.image_size
    if args.prompt:
        prompt_CHW = prompt_to_video(args.prompt, model.image_size, model.in_channels, max_frames=1)[0]
    else:
        prompt_CHW = moving_sprites(1, num_frames=1, image_size=max(h, w), seed=args.seed).video[0, 0]
        prompt_CHW = prompt_to_video(prompt_CHW, model.image_size, model.in_channels)[0]

    cycle = [int(a) for a in args.actions.split(",")]
    if any(not 0 <= a < model.num_actions for a in cycle):
        parser.error(f"latent actions must lie in 0..{model.num_actions - 1}, got {args.actions}")
    actions_BN = torch.tensor([[cycle[i % len(cycle)] for i in range(args.frames)]])

    start = time.perf_counter()
    generator = torch.Generator().manual_seed(args.seed)
    video_BTCHW = model.generate(prompt_CHW[None], actions_BN, generator=generator)  # 1 (1 + N) C H W
    seconds = time.perf_counter() - start

    path = save_generation(video_BTCHW, Path(args.out), fps=8, scale=4)
    print(f"{model.name or 'model'}: {args.frames} frames under actions {actions_BN[0].tolist()} "
          f"in {seconds:.1f} s ({args.frames / seconds:.1f} frames/s) -> {path}")
    print(f"video {tuple(video_BTCHW.shape)} (B T C H W), {model.num_actions} latent actions, "
          f"{worldmodels.count_parameters(model) / 1e6:.2f}M parameters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
