"""Recording environments into shards: splits, CoinRun policies, gymnasium episodes, the CLI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from worldmodels.cli import main
from worldmodels.data.clips import ClipDataset
from worldmodels.data.recorders import RECORDERS, get_recorder, parse_splits, plan_splits, record
from worldmodels.data.shards import load_shard, read_manifest

needs_procgen = pytest.mark.skipif(
    importlib.util.find_spec("procgen") is None, reason="procgen-mirror is not installed (extra: coinrun)"
)
needs_minigrid = pytest.mark.skipif(importlib.util.find_spec("minigrid") is None, reason="minigrid is not installed")
MINIGRID = "gym:MiniGrid-Empty-8x8-v0"


def _frames_and_episodes(directory: Path, split: str) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(frames, actions, level_seed) of every episode of a split, from the shards."""
    out = []
    for shard in read_manifest(directory)["shards"]:
        if shard["split"] != split:
            continue
        arrays = load_shard(directory / shard["path"])
        for _, offset, length, seed in shard["episodes"]:
            sl = slice(offset, offset + length)
            out.append((np.asarray(arrays["frames"][sl]), arrays["actions"][sl], seed))
    return out


def _mean_scroll(frames: np.ndarray, max_shift: int = 6) -> float:
    """Mean horizontal camera motion per step in pixels (positive: the view moves right).

    CoinRun centres the camera on the agent, so the agent's progress to the right shows as the
    scene shifting left; the shift is the one that best aligns consecutive frames.
    """
    a, b = frames[:-1].astype(np.float32), frames[1:].astype(np.float32)
    W = frames.shape[2]
    errors = []
    for dx in range(-max_shift, max_shift + 1):
        if dx >= 0:
            errors.append(np.abs(b[:, :, : W - dx] - a[:, :, dx:]).mean(axis=(1, 2, 3)))
        else:
            errors.append(np.abs(b[:, :, -dx:] - a[:, :, : W + dx]).mean(axis=(1, 2, 3)))
    return float((np.argmin(np.stack(errors), axis=0) - max_shift).mean())


def test_parse_and_plan_splits() -> None:
    assert parse_splits("train=0.8,val=0.1,test=0.1") == {"train": 0.8, "val": 0.1, "test": 0.1}
    plans = plan_splits(5, "train=0.8,val=0.1,test=0.1", start_level=100)
    assert [(p.name, p.episodes) for p in plans] == [("train", 3), ("val", 1), ("test", 1)]
    assert [(p.level_start, p.level_stop) for p in plans] == [(100, 103), (103, 104), (104, 105)]
    plans = plan_splits(None, "train=4,val=2", num_levels=50)
    assert [(p.episodes, p.level_start, p.num_levels) for p in plans] == [(4, 0, 50), (2, 50, 50)]
    for bad, match in (("train=0.5,val=0.2", "sum to"), ("train=3,val=0.5", "mix"), ("train", "NAME=VALUE"),
                       ("train=1,train=2", "twice"), ("a/b=1", "plain word")):
        with pytest.raises(ValueError, match=match):
            plan_splits(3, bad)
    with pytest.raises(ValueError, match="add up to 3 episodes, but 5"):
        plan_splits(5, "train=2,val=1")


def test_unknown_env_and_policy_errors() -> None:
    assert {"coinrun", "procgen", "gym"} <= set(RECORDERS)
    with pytest.raises(ValueError, match="Did you mean 'coinrun'"):
        get_recorder("coinrn")
    with pytest.raises(ValueError, match="write gym:CartPole-v1"):
        get_recorder("CartPole-v1")
    with pytest.raises(ValueError, match="gymnasium cannot make"):
        get_recorder("gym:NoSuchEnv-v0")


@needs_procgen
def test_coinrun_biased_policy_moves_right_and_levels_are_split(tmp_path: Path) -> None:
    kwargs = dict(episodes=None, frames_per_episode=60, splits="train=2,val=1,test=1", seed=0, progress=False)
    scroll = {}
    for policy in ("random", "biased"):
        result = record("coinrun", tmp_path / policy, policy=policy, **kwargs)
        manifest = result.manifest
        assert manifest["env"]["name"] == "coinrun" and manifest["env"]["num_actions"] == 15
        assert manifest["image_size"] == [64, 64] and manifest["policy"]["name"] == policy
        ranges = {name: split["level_seeds"] for name, split in manifest["splits"].items()}
        assert ranges == {"train": [0, 2], "val": [2, 3], "test": [3, 4]}
        for split, (lo, hi) in ranges.items():
            episodes = _frames_and_episodes(tmp_path / policy, split)
            assert len(episodes) == manifest["splits"][split]["episodes"]
            for frames, actions, seed in episodes:
                assert lo <= seed < hi
                assert frames.shape[1:] == (64, 64, 3) and 2 <= len(frames) <= 60
                assert actions[-1] == -1 and ((actions[:-1] >= 0) & (actions[:-1] < 15)).all()
        train = _frames_and_episodes(tmp_path / policy, "train")
        scroll[policy] = np.mean([_mean_scroll(frames) for frames, _, _ in train])
    assert scroll["biased"] > scroll["random"] + 0.2, scroll
    biased = _frames_and_episodes(tmp_path / "biased", "train")[0][1]
    assert np.isin(biased[:-1], [7, 8]).mean() > 0.5  # RIGHT, RIGHT+UP dominate


@needs_procgen
def test_coinrun_recording_is_deterministic_and_resizes(tmp_path: Path) -> None:
    runs = [
        record("coinrun", tmp_path / str(i), episodes=2, frames_per_episode=12, splits="train=2",
               image_size=(32, 48), policy="scripted", seed=7, progress=False)
        for i in range(2)
    ]
    assert runs[0].manifest["image_size"] == [32, 48]
    a, b = (_frames_and_episodes(tmp_path / str(i), "train") for i in range(2))
    assert len(a) == len(b) == 2
    for (fa, aa, sa), (fb, ab, sb) in zip(a, b):
        assert fa.shape[1:] == (32, 48, 3)
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(aa, ab)
        assert sa == sb


@needs_minigrid
def test_minigrid_episodes_respect_boundaries(tmp_path: Path) -> None:
    result = record(MINIGRID, tmp_path / "mg", episodes=4, frames_per_episode=30, policy="scripted",
                    splits="train=3,val=1", image_size=32, progress=False)
    manifest = result.manifest
    assert manifest["env"]["action_names"][:3] == ["left", "right", "forward"]
    episodes = _frames_and_episodes(tmp_path / "mg", "train")
    assert [seed for *_, seed in episodes] == [0, 1, 2]
    for frames, actions, _ in episodes:
        # the greedy walker reaches the goal of the empty room well before 30 frames
        assert frames.shape[1:] == (32, 32, 3) and 2 < len(frames) < 30
        assert actions[-1] == -1 and set(actions[:-1].tolist()) <= {0, 1, 2}
    ds = ClipDataset(tmp_path / "mg", num_frames=8, stride=1, split="train")
    lengths = {i: len(f) for i, (f, _, _) in enumerate(episodes)}
    assert len(ds) == sum(n - 7 for n in lengths.values())
    for i in range(len(ds)):
        source, start = ds.locate(i)
        assert start + 8 <= lengths[int(source.rsplit("=", 1)[1])]


@needs_minigrid
def test_cli_record_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["record", MINIGRID, "--out", str(out), "--episodes", "3", "--frames-per-episode", "12",
            "--policy", "random", "--splits", "train=2,val=1", "--image-size", "16", "--seed", "3",
            "--preview", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "3 episodes" in printed and "level seeds [2, 3)" in printed
    assert (out / "preview.gif").is_file()
    manifest = read_manifest(out)
    assert manifest["seed"] == 3 and manifest["counts"]["episodes"] == 3
    assert ClipDataset(out, num_frames=4, split="val")[0]["video"].shape == (4, 3, 16, 16)
    assert main(argv) == 2  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--policy", "scripted"]) == 0
    assert read_manifest(out)["policy"]["name"] == "scripted"
    assert main(["record", MINIGRID, "--out", str(tmp_path / "x"), "--episodes", "1", "--policy", "greedy"]) == 2
    assert "choose one of ['random', 'biased', 'sticky', 'scripted']" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("ale_py") is None, reason="ale-py is not installed")
def test_atari_recording_resizes_frames(tmp_path: Path) -> None:
    result = record("gym:ALE/Breakout-v5", tmp_path / "ale", episodes=1, frames_per_episode=10, splits="train=1",
                    policy="biased", image_size=64, progress=False)
    assert result.manifest["env"]["action_names"] == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    (frames, actions, seed), = _frames_and_episodes(tmp_path / "ale", "train")
    assert frames.shape == (10, 64, 64, 3) and seed == 0 and actions[-1] == -1
    with pytest.raises(ValueError, match="not available"):
        record("gym:ALE/Breakout-v5", tmp_path / "x", episodes=1, frames_per_episode=4, policy="scripted")


@needs_procgen
def test_coinrun_sticky_policy_holds_visible_actions_and_manifest_groups_them(tmp_path: Path) -> None:
    from worldmodels.data.recorders import (
        PROCGEN_COMBOS,
        PROCGEN_STICKY_WEIGHTS,
        STICKY_MEAN_HOLD,
        procgen_action_groups,
    )

    result = record("coinrun", tmp_path / "s", episodes=4, frames_per_episode=64, policy="sticky", splits="train=4",
                    seed=1, progress=False)
    groups = result.manifest["env"]["action_groups"]
    assert groups == procgen_action_groups() and set(groups) == {"left", "right", "jump", "stay"}
    assert sorted(i for g in groups.values() for i in g) == list(range(15))
    allowed = {PROCGEN_COMBOS.index(c) for c in PROCGEN_STICKY_WEIGHTS}
    runs = []
    for _, actions, _ in _frames_and_episodes(tmp_path / "s", "train"):
        acts = actions[:-1]
        assert set(acts.tolist()) <= allowed
        changes = np.flatnonzero(np.diff(acts)) + 1
        runs += np.diff(np.concatenate([[0], changes, [len(acts)]])).tolist()
    assert np.mean(runs) > STICKY_MEAN_HOLD / 2  # held for several steps at a time


@needs_procgen
def test_action_repeat_stores_every_kth_frame_of_the_same_play(tmp_path: Path) -> None:
    """Recording with action_repeat=2 is the same game as holding each action for two steps and
    keeping every second frame: same frames, same actions, rewards summed over the held steps."""
    sequence = [7, 7, 8, 7, 1, 4, 8, 8, 2, 7]  # RIGHT, RIGHT+UP, LEFT, NOOP, LEFT+UP

    def scripted(held: int):
        calls = {"n": 0}

        def policy(obs: np.ndarray, first: np.ndarray) -> np.ndarray:
            action = sequence[(calls["n"] // held) % len(sequence)]
            calls["n"] += 1
            return np.full(len(first), action)

        return policy

    kwargs = dict(episodes=2, splits="train=2", seed=3, progress=False)
    fast = record("coinrun", tmp_path / "a", env_options={"action_repeat": 2, "num_envs": 2},
                  frames_per_episode=12, policy=scripted(1), **kwargs)
    slow = record("coinrun", tmp_path / "b", env_options={"num_envs": 2}, frames_per_episode=23,
                  policy=scripted(2), **kwargs)
    assert fast.manifest["env"]["action_repeat"] == 2 and fast.manifest["fps"] == 7.5
    from worldmodels.data.shards import open_array

    pa, pb = (tmp_path / "a" / fast.manifest["shards"][0]["path"]), (tmp_path / "b" / slow.manifest["shards"][0]["path"])
    sa, sb = ({**load_shard(p), "rewards": open_array(p, "rewards")} for p in (pa, pb))
    ea, eb = fast.manifest["shards"][0]["episodes"], slow.manifest["shards"][0]["episodes"]
    assert len(ea) == len(eb) == 2
    for (_, oa, la, seed_a), (_, ob, lb, seed_b) in zip(ea, eb):
        assert seed_a == seed_b and la == 12 and lb == 23
        np.testing.assert_array_equal(sa["frames"][oa:oa + la], sb["frames"][ob:ob + lb:2])
        np.testing.assert_array_equal(sa["actions"][oa:oa + la - 1], sb["actions"][ob:ob + lb - 1:2])
        want = sb["rewards"][ob:ob + lb - 1].reshape(-1, 2).sum(axis=1)
        np.testing.assert_allclose(sa["rewards"][oa:oa + la - 1], want)
    with pytest.raises(ValueError, match="action_repeat"):
        get_recorder("coinrun", action_repeat=0)


class _CountingGym3:
    """A stand-in for ProcgenGym3Env whose frames show their game step, whose step t pays reward t,
    and whose episodes end after 5 steps (env 0) or 6 steps (env 1)."""

    lengths = (5, 6)

    def __init__(self, num: int, **_: object) -> None:
        from worldmodels.data.recorders.procgen import PROCGEN_COMBOS

        self.combos = [list(c) for c in PROCGEN_COMBOS]
        self.n, self.t, self.episode = num, np.zeros(num, np.int64), np.zeros(num, np.int64)
        self.rew, self.first = np.zeros(num), np.ones(num, bool)

    def observe(self):
        rgb = np.zeros((self.n, 64, 64, 3), np.uint8)
        rgb[:, 0, 0, 0], rgb[:, 0, 0, 1] = self.t, self.episode
        return self.rew.copy(), {"rgb": rgb}, self.first.copy()

    def act(self, action: np.ndarray) -> None:
        self.t += 1
        self.rew = self.t.astype(np.float64)
        self.first = self.t >= np.array(self.lengths[: self.n])
        self.episode[self.first] += 1
        self.t[self.first] = 0

    def get_info(self):
        return [{"level_seed": int(100 * i + e)} for i, e in enumerate(self.episode)]

    def close(self) -> None:
        pass


@needs_procgen
def test_action_repeat_sums_rewards_and_ends_episodes_inside_a_held_action(tmp_path: Path, monkeypatch) -> None:
    recorder = get_recorder("coinrun", action_repeat=2, num_envs=1)
    monkeypatch.setattr(recorder._procgen, "ProcgenGym3Env", _CountingGym3)
    result = recorder.record(tmp_path / "c", episodes=2, frames_per_episode=8, policy=lambda obs, first: [7],
                             splits="train=2", progress=False)
    from worldmodels.data.shards import open_array

    path = tmp_path / "c" / result.manifest["shards"][0]["path"]
    shard = load_shard(path)
    rewards, ended = open_array(path, "rewards"), open_array(path, "terminated")
    episodes = result.manifest["shards"][0]["episodes"]
    first, second = [slice(offset, offset + length) for _, offset, length, _ in episodes]
    # episode 0 (5 steps): frames at game steps 0, 2, 4; the third action's first step ends it
    assert shard["frames"][first, 0, 0, 0].tolist() == [0, 2, 4] and shard["frames"][first, 0, 0, 1].tolist() == [0] * 3
    assert rewards[first][:-1].tolist() == [1 + 2, 3 + 4] and rewards[first][-1] == 5  # not the next level's step
    assert ended[first].tolist() == [0, 0, 1]
    # the next level was entered in the middle of a held action: its frames are at odd game steps
    assert shard["frames"][second, 0, 0, 0].tolist() == [1, 3, 5][: second.stop - second.start]
    assert shard["frames"][second, 0, 0, 1].tolist() == [1] * (second.stop - second.start)
    assert shard["step"][first].tolist() == [0, 1, 2]
