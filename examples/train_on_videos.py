"""Train a world model on a folder of your own videos: ClipDataset -> train -> generate.

Any video FFmpeg reads works (.mp4, .webm, .avi, .gif, ...), of any size (clips are resized to
the model's frames) and length (each file is cut into clips of ``num_frames`` frames; clips never
cross files). Without a folder, the script first writes a few short mp4s of the library's
moving-sprite world, so it runs anywhere.

    python examples/train_on_videos.py ~/videos --out runs/my-videos          # your videos
    python examples/train_on_videos.py --tiny                                 # synthetic mp4s, 2 steps

Training runs the paper's two stages: the tokenizer alone, then the dynamics co-trained with the
latent action model. The run directory holds checkpoints, TensorBoard logs and one
``WorldModel.save_pretrained`` model per stage; running the script again resumes the run.
At the end the model generates a clip from the first frame of a training clip with the latent
actions it infers from it (``OUT/generated.gif``: real above, generated below).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import worldmodels
from worldmodels.data.clips import ClipDataset
from worldmodels.data.synthetic import moving_sprites
from worldmodels.data.video_io import write_video
from worldmodels.play.export import save_generation
from worldmodels.training import TrainConfig, train


def write_synthetic_videos(folder: Path, count: int, frames: int, size: int = 64) -> list[Path]:
    """``count`` mp4 files of ``frames`` frames of the sprite world (``T H W C`` uint8 each)."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = moving_sprites(count, num_frames=frames, image_size=size, seed=0)
    return [write_video(folder / f"sprites-{i:02d}.mp4", video_THWC, fps=15)
            for i, video_THWC in enumerate(clips.frames_uint8())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="?", help="a folder of videos (searched recursively); default: synthetic mp4s")
    parser.add_argument("--out", default="runs/videos", help="run directory (default runs/videos)")
    parser.add_argument("--preset", default="genie-tiny")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per stage (default 200)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--frame-skip", type=int, default=1, help="take every k-th frame of the videos")
    parser.add_argument("--tiny", action="store_true", help="2 steps per stage, batch 2, 4-frame clips: seconds")
    args = parser.parse_args(argv)

    out = Path(args.out)
    overrides: dict = {}
    if args.tiny:
        args.steps, args.batch_size = 2, 2
        overrides = {"num_frames": 4, "sampler": {"steps": 2}}
    model = worldmodels.build(args.preset, **overrides)
    assert isinstance(model, worldmodels.WorldModel)

    folder = Path(args.videos) if args.videos else out / "videos"
    if not args.videos and not any(folder.glob("*.mp4")):
        written = write_synthetic_videos(folder, count=4 if args.tiny else 16, frames=4 * model.num_frames)
        print(f"wrote {len(written)} synthetic videos to {folder}")

    clips = ClipDataset(folder, num_frames=model.num_frames, image_size=model.image_size,
                        frame_skip=args.frame_skip)
    print(f"{len(clips)} clips of {model.num_frames} frames from {len(clips.sources)} files in {folder}")

    config = TrainConfig(
        stage="all", steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=min(30, args.steps),
        run_dir=str(out / "run"), resume=True, checkpoint_every=100, log_every=10,
        image_every=0 if args.tiny else 100, tensorboard=not args.tiny, progress=not args.tiny,
    )
    result = train(config, model=model, train_data=clips)
    for stage, res in result.stages.items():
        loss = f", last loss {res.last_loss:.4f}" if res.last_loss is not None else ""
        state = "already finished" if res.already_done else f"{res.step} steps{loss}"
        print(f"  {stage}: {state} -> {res.final_dir}")

    trained = worldmodels.WorldModel.from_pretrained(result.final_dir).eval()
    real_BTCHW = clips[0]["video"][None]
    with torch.no_grad():
        actions_BN = trained.infer_actions(real_BTCHW)
        generated = trained.generate(real_BTCHW[:, 0], actions_BN, generator=torch.Generator().manual_seed(0))
    path = save_generation(torch.cat([real_BTCHW, generated]), out / "generated.gif", fps=8, nrow=1, scale=2)
    print(f"inferred latent actions {actions_BN[0].tolist()}; real vs generated -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
