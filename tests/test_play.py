"""Playing learned worlds: export, headless CLI, the pygame window and the action legend."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import worldmodels
from worldmodels.cli import main
from worldmodels.data.video_io import read_video
from worldmodels.envs import WorldModelEnv
from worldmodels.play import (
    ActionEffect,
    PlayWindow,
    action_legend,
    arrow_bindings,
    describe_motion,
    estimate_action_effects,
    find_eval_report,
    labels_from_eval_report,
    parse_actions,
    phase_correlation,
    save_generation,
    save_rollout,
    to_uint8_frames,
)

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def toy_checkpoint(tmp_path) -> Path:
    """The toy world saved as a checkpoint directory."""
    return worldmodels.build("toy-world").save_pretrained(tmp_path / "toy-ckpt")


@pytest.fixture
def prompt_png(tmp_path) -> str:
    """A 24x40 (not the model's size) picture with some structure."""
    rng = np.random.default_rng(0)
    image = np.kron(rng.integers(0, 256, (6, 10, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "prompt.png")
    return str(tmp_path / "prompt.png")


def _colour_frames(num: int = 6, size: int = 32) -> np.ndarray:
    """Flat, well separated colours (they survive GIF palettes and H.264 nearly intact)."""
    colours = np.array([[230, 30, 30], [30, 230, 30], [30, 30, 230], [230, 230, 30], [30, 230, 230], [200, 200, 200]])
    return np.stack([np.full((size, size, 3), colours[i % len(colours)], np.uint8) for i in range(num)])


# ---------------------------------------------------------------------------------------- export
@pytest.mark.parametrize("suffix, tolerance", [(".gif", 2.0), (".mp4", 12.0)])
def test_save_rollout_writes_readable_files(tmp_path, suffix: str, tolerance: float) -> None:
    frames = _colour_frames()
    path = save_rollout(list(frames), tmp_path / "out" / f"run{suffix}", fps=10, scale=2)
    back = read_video(path)
    assert back.shape == (6, 64, 64, 3)
    error = np.abs(back.astype(float) - frames.repeat(2, 1).repeat(2, 2).astype(float)).mean(axis=(1, 2, 3))
    assert (error < tolerance).all(), error


def test_save_rollout_rejects_unknown_suffix_and_converts_tensors(tmp_path) -> None:
    with pytest.raises(ValueError, match="Cannot tell the format of .*run.avi.*\\.gif"):
        save_rollout(_colour_frames(), tmp_path / "run.avi")
    video = torch.rand(1, 3, 3, 8, 8)
    frames = to_uint8_frames(video)
    assert frames.shape == (3, 8, 8, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[1], (video[0, 1].permute(1, 2, 0) * 255).round().byte().numpy())
    with pytest.raises(ValueError, match="batch of 2 videos"):
        to_uint8_frames(torch.rand(2, 3, 3, 8, 8))


def test_save_generation_lays_a_batch_out_as_a_grid(tmp_path) -> None:
    model = worldmodels.build("toy-world")
    colours = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]])
    prompts = colours[:, :, None, None].expand(3, 3, 16, 16)  # one flat colour per video
    video = model.generate(prompts, torch.randint(0, 4, (3, 5)))
    path = save_generation(video, tmp_path / "grid.gif", nrow=2, padding=2)
    back = read_video(path)
    # 2x2 tiles of 16 + padding; Pillow merges identical consecutive GIF frames, so count on the MP4
    assert back.shape[1:] == (2 * 18 + 2, 2 * 18 + 2, 3)
    assert read_video(save_generation(video, tmp_path / "grid.mp4", nrow=2)).shape == (6, 38, 38, 3)
    tiles = {(0, 0): 0, (0, 1): 1, (1, 0): 2}  # (row, column) -> video
    for (row, col), i in tiles.items():
        top, left = 2 + 18 * row, 2 + 18 * col
        mean = back[0, top : top + 16, left : left + 16].reshape(-1, 3).mean(0)
        np.testing.assert_allclose(mean, colours[i].numpy() * 255, atol=4)
    assert back[0, 20:36, 20:36].max() == 0  # the empty fourth tile is padding
    single = read_video(save_generation(video[:1], tmp_path / "one.mp4"))
    assert single.shape == (6, 16, 16, 3)


# ---------------------------------------------------------------------------------------- headless
def play_gif_frames(source: str | os.PathLike[str], actions: list[int], out: Path, prompt: str | None = None,
                    seed: int = 0, extra: list[str] | None = None) -> np.ndarray:
    """Play ``actions`` headless through ``worldmodels play`` and read the written GIF back (``T H W 3``)."""
    argv = ["play", str(source), "--actions", ",".join(map(str, actions)), "--out", str(out), "--seed", str(seed)]
    argv += ["--prompt", prompt] if prompt else []
    assert main(argv + (extra or [])) == 0
    return read_video(out)


def assert_actions_change_frames(source: str | os.PathLike[str], tmp_path: Path, prompt: str | None = None,
                                 steps: int = 4) -> None:
    """Different action sequences from the same prompt and seed must give different frames.

    Works with any checkpoint directory or preset; the lead's trained genie-tiny test reuses it.
    """
    num_actions = worldmodels.envs.load_world_model(source).num_actions
    videos = [play_gif_frames(source, [a] * steps, tmp_path / f"a{a}.gif", prompt) for a in range(num_actions)]
    for video in videos:  # (Pillow merges identical consecutive GIF frames: a static world writes fewer)
        assert 1 <= video.shape[0] <= steps + 1
        np.testing.assert_array_equal(video[0], videos[0][0])  # the same prompt frame
    differing = {a for a in range(1, num_actions) if not np.array_equal(videos[a], videos[0])}
    assert differing, "every latent action produced the same frames: the world ignores its actions"


def test_headless_cli_writes_gif_whose_frames_depend_on_actions(toy_checkpoint, prompt_png, tmp_path, capsys) -> None:
    frames = play_gif_frames(toy_checkpoint, [0, 1, 2], tmp_path / "run.gif", prompt_png)
    assert frames.shape == (4, 16, 16, 3)
    assert "wrote" in capsys.readouterr().out
    assert_actions_change_frames(toy_checkpoint, tmp_path, prompt_png)


def test_headless_cli_steps_cycle_actions_and_write_mp4(toy_checkpoint, tmp_path) -> None:
    frames = play_gif_frames(toy_checkpoint, [1, 2], tmp_path / "run.mp4", extra=["--steps", "5", "--scale", "2"])
    assert frames.shape == (6, 32, 32, 3)


def test_headless_cli_errors_are_clean(toy_checkpoint, tmp_path, capsys) -> None:
    missing = tmp_path / "missing.png"
    cases = [
        (["--prompt", str(missing), "--actions", "0", "--out", str(tmp_path / "a.gif")],
         f"Prompt image {missing} does not exist"),
        (["--actions", "0,4", "--out", str(tmp_path / "a.gif")], "out of range.*4 latent actions"),
        (["--actions", "0"], "add --out run.gif"),
        (["--actions", "0,x", "--out", str(tmp_path / "a.gif")], "'x' in --actions is not an integer"),
        (["--actions", "0", "--out", str(tmp_path / "a.avi")], "Cannot tell the format"),
    ]
    for extra, message in cases:
        assert main(["play", str(toy_checkpoint), *extra]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert __import__("re").search(message, err), err
    assert not (tmp_path / "a.gif").exists()


def test_parse_actions() -> None:
    assert parse_actions("3,3, 1 0", 4) == [3, 3, 1, 0]
    with pytest.raises(ValueError, match="No latent actions"):
        parse_actions(" , ")


def test_cli_sampler_steps_reach_the_sampler(tmp_path) -> None:
    if "genie-tiny" not in worldmodels.list_components("model"):
        pytest.skip("the Genie plug-in (genie-tiny) is not installed")
    model = worldmodels.build(
        "genie-tiny", image_size=32, num_frames=3,
        tokenizer={"channels": 8}, dynamics={"dim": 32, "depth": 1, "num_heads": 2},
    )  # fmt: skip
    ckpt = model.save_pretrained(tmp_path / "genie")
    loaded = worldmodels.envs.load_world_model(ckpt, sampler_steps=3)
    assert loaded.sampler.steps == 3
    frames = play_gif_frames(ckpt, [1, 7], tmp_path / "g.gif", extra=["--sampler-steps", "2", "--no-cache"])
    assert frames.shape == (3, 32, 32, 3)


# ---------------------------------------------------------------------------------------- the window
def _post_keys(*keys: int) -> None:
    import pygame

    pygame.display.init()
    for key in keys:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))


def test_window_plays_saves_resets_and_quits_on_escape(tmp_path) -> None:
    pygame = pytest.importorskip("pygame")
    env = WorldModelEnv(worldmodels.build("toy-world"))
    legend = [ActionEffect(a, f"label {a}", "rollout") for a in range(4)]
    window = PlayWindow(env, legend=legend, arrows={"right": 2}, seed=0, scale=3, save_path=tmp_path / "w.gif")
    _post_keys(pygame.K_1, pygame.K_RIGHT, pygame.K_s, pygame.K_r, pygame.K_4, pygame.K_ESCAPE, pygame.K_2)
    frames = window.run()
    assert window.steps_played == 3  # 1, Right, then 4 after the reset; the key after Esc is never played
    assert len(frames) == 2 and env.frame_index == 1  # the reset started a new episode
    assert window.saved == [tmp_path / "w.gif"]
    assert read_video(tmp_path / "w.gif").shape == (3, 16, 16, 3)  # prompt + 2 frames before the reset
    assert env.context_actions[0, -1].item() == 3
    assert not pygame.display.get_init()  # the window closed


def test_window_stops_after_max_steps() -> None:
    pygame = pytest.importorskip("pygame")
    env = WorldModelEnv(worldmodels.build("toy-world"))
    _post_keys(pygame.K_1, pygame.K_2, pygame.K_3, pygame.K_4)
    window = PlayWindow(env, seed=0)
    window.run(max_steps=2)
    assert window.steps_played == 2


def test_cli_window_runs_under_dummy_video_and_quits_on_quit_event(toy_checkpoint, tmp_path, capsys) -> None:
    pygame = pytest.importorskip("pygame")
    _post_keys(pygame.K_1, pygame.K_LEFT, pygame.K_3)
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    assert main(["play", str(toy_checkpoint), "--legend-steps", "2", "--scale", "2"]) == 0
    assert "played 3 frames" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------- the legend
def _square_clip(path: list[tuple[int, int]], size: int = 32, side: int = 6) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    background = (((yy // 4 + xx // 4) % 2) * 40 + 30).astype(np.uint8)[..., None].repeat(3, -1)
    frames = []
    for y, x in path:
        frame = background.copy()
        frame[y : y + side, x : x + side] = (250, 200, 50)
        frames.append(frame)
    return np.stack(frames)


@pytest.mark.parametrize(
    "path, label",
    [
        ([(10, 4), (10, 7), (10, 10), (10, 13), (10, 16)], "moves right"),
        ([(10, 20), (10, 17), (10, 14), (10, 11), (10, 8)], "moves left"),
        ([(20, 10), (17, 10), (14, 10), (11, 10), (8, 10)], "moves up"),
        ([(4, 10), (7, 10), (10, 10), (13, 10), (16, 10)], "moves down"),
        ([(20, 10), (16, 10), (13, 10), (16, 10), (20, 10)], "jumps"),
        ([(10, 10)] * 5, "no visible change"),
    ],
)
def test_describe_motion_labels(path, label: str) -> None:
    estimate = describe_motion(_square_clip(path))
    assert estimate.label == label
    if label.startswith("moves"):
        assert np.hypot(estimate.dx, estimate.dy) == pytest.approx(3.0, abs=0.6)


def test_phase_correlation_measures_a_scroll() -> None:
    texture = np.random.default_rng(0).random((32, 64))
    assert phase_correlation(texture[:, 0:32], texture[:, 3:35]) == (0.0, -3.0)  # content moves left
    rgb = (np.stack([texture[:, s : s + 32] for s in (0, 2, 4, 6)])[..., None].repeat(3, -1) * 255).astype(np.uint8)
    assert describe_motion(rgb).label == "view moves right"


def test_labels_from_eval_report_and_arrow_bindings(tmp_path) -> None:
    report = {
        "latent_actions": {
            "ground_truth": {
                "available": True,
                "contingency_table": [[9, 1, 0], [0, 8, 2], [1, 0, 0], [0, 0, 0]],
                "action_names": ["NOOP", "LEFT", "RIGHT"],
            }
        }
    }
    # the demo's layout: OUT/eval/report.json beside OUT/run/dynamics/final
    (tmp_path / "run" / "dynamics" / "final").mkdir(parents=True)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "report.json").write_text(json.dumps(report))
    checkpoint = tmp_path / "run" / "dynamics" / "final"
    assert find_eval_report(checkpoint) == tmp_path / "eval" / "report.json"
    labels = labels_from_eval_report(checkpoint, 4)
    assert labels == labels_from_eval_report(tmp_path / "eval" / "report.json", 4)
    assert labels == ["NOOP (90%)", "LEFT (80%)", "NOOP (100%)", "never used"]
    assert labels_from_eval_report(checkpoint, 8) is None  # a table for another model is ignored
    model = worldmodels.build("toy-world")
    legend = action_legend(model, checkpoint=checkpoint)
    assert [e.source for e in legend] == ["eval report"] * 4 and legend[1].label == "LEFT (80%)"
    bindings = arrow_bindings(legend, 4)
    assert bindings["left"] == 1 and sorted(bindings.values()) == [0, 1, 2, 3]


def test_arrow_bindings_follow_measured_motion() -> None:
    effects = [
        ActionEffect(0, "no visible change", "rollout"),
        ActionEffect(1, "moves right", "rollout", dx=2.0),
        ActionEffect(2, "jumps", "rollout", dy=-0.2),
        ActionEffect(3, "changes in place", "rollout", dx=-0.9, dy=0.1),
    ]
    assert arrow_bindings(effects, 4) == {"right": 1, "up": 2, "left": 3, "down": 0}


def test_estimate_action_effects_rolls_every_action() -> None:
    model = worldmodels.build("toy-world")
    effects = estimate_action_effects(model, torch.rand(1, 3, 16, 16), steps=2)
    assert [e.action for e in effects] == [0, 1, 2, 3]
    assert all(e.source == "rollout" and e.label for e in effects)
