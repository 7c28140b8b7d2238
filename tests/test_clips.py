"""ClipDataset over shards, arrays and videos: exact round trips, sampling, splits, bad input."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodels.data.clips import ClipDataset, SkippedFileWarning
from worldmodels.data.shards import (
    Episode,
    ShardFormatError,
    ShardWriter,
    load_shard,
    open_array,
    read_manifest,
    write_shard,
)
from worldmodels.data.synthetic import SyntheticClipDataset, moving_sprites
from worldmodels.data.video_io import write_gif, write_video

LENGTHS = {"train": (12, 9, 20), "val": (10,), "test": (7, 11)}


def _episode(length: int, seed: int, size: int = 16) -> Episode:
    clip = moving_sprites(1, num_frames=length, image_size=size, seed=seed)
    return Episode(clip.frames_uint8()[0], np.r_[clip.actions[0].numpy(), -1], level_seed=seed)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, Episode]]:
    """A recorded data set of sprite episodes (small shards, so several per split)."""
    root = tmp_path_factory.mktemp("ds") / "sprites"
    writer = ShardWriter(root, {"env": {"name": "sprites", "num_actions": 5}}, frames_per_shard=15)
    episodes: dict[int, Episode] = {}
    seed = 0
    for split, lengths in LENGTHS.items():
        for length in lengths:
            episode = _episode(length, seed)
            episodes[writer.add(split, episode)] = episode
            seed += 1
    writer.close()
    return root, episodes


def _episode_of(source: str) -> int:
    return int(source.rsplit("#episode=", 1)[1])


def test_shard_round_trip_is_exact_and_memory_mapped(tmp_path: Path) -> None:
    episodes = [_episode(5, 0), _episode(7, 1)]
    entry = write_shard(tmp_path / "s.npz", episodes, [4, 9])
    assert entry["episodes"] == [[4, 0, 5, 0], [9, 5, 7, 1]]
    shard = load_shard(tmp_path / "s.npz")
    assert isinstance(shard["frames"], np.memmap)
    np.testing.assert_array_equal(shard["frames"], np.concatenate([e.frames for e in episodes]))
    np.testing.assert_array_equal(shard["episode"], [4] * 5 + [9] * 7)
    assert shard["actions"][4] == -1 and shard["actions"][-1] == -1
    np.testing.assert_array_equal(shard["actions"][:4], episodes[0].actions[:4])
    write_shard(tmp_path / "c.npz", episodes, compress=True)
    np.testing.assert_array_equal(open_array(tmp_path / "c.npz", "frames"), shard["frames"])


def test_manifest_describes_splits_and_counts(dataset: tuple[Path, dict[int, Episode]]) -> None:
    root, episodes = dataset
    manifest = read_manifest(root)
    assert manifest["format_version"] == 1 and manifest["layout"] == "flat"
    assert manifest["image_size"] == [16, 16] and manifest["channels"] == 3
    for split, lengths in LENGTHS.items():
        assert manifest["splits"][split]["episodes"] == len(lengths)
        assert manifest["splits"][split]["frames"] == sum(lengths)
    assert manifest["counts"]["transitions"] == sum(len(e) - 1 for e in episodes.values())
    assert len(manifest["shards"]) > 3  # small frames_per_shard: several shards per split
    assert not [p for p in root.rglob(".*")], "temporary files left behind"


def test_clips_are_exact_and_never_cross_episodes(dataset: tuple[Path, dict[int, Episode]]) -> None:
    root, episodes = dataset
    ds = ClipDataset(root, num_frames=4, stride=1)
    expected = sum(len(e) - 4 + 1 for e in episodes.values())
    assert len(ds) == expected
    for i in range(len(ds)):
        item = ds[i]
        episode = episodes[_episode_of(item["source"])]
        start = item["start"]
        assert start + 4 <= len(episode)
        assert item["video"].shape == (4, 3, 16, 16) and item["video"].dtype == torch.float32
        got = (item["video"].permute(0, 2, 3, 1) * 255).round().byte().numpy()
        np.testing.assert_array_equal(got, episode.frames[start : start + 4])
        np.testing.assert_array_equal(item["actions"].numpy(), episode.actions[start : start + 3])


def test_stride_and_frame_skip(dataset: tuple[Path, dict[int, Episode]]) -> None:
    root, episodes = dataset
    ds = ClipDataset(root, num_frames=3, stride=2, frame_skip=3, split="train")
    span = (3 - 1) * 3 + 1
    assert ds.stride == 2
    assert len(ds) == sum((n - span) // 2 + 1 for n in LENGTHS["train"])
    for i in range(len(ds)):
        item = ds[i]
        episode = episodes[_episode_of(item["source"])]
        start = item["start"]
        assert start % 2 == 0
        got = (item["video"].permute(0, 2, 3, 1) * 255).round().byte().numpy()
        np.testing.assert_array_equal(got, episode.frames[start : start + span : 3])
        steps = episode.actions[start : start + span - 1].reshape(2, 3)
        want = [s[0] if (s == s[0]).all() else -1 for s in steps]  # known only if all skipped steps agree
        np.testing.assert_array_equal(item["actions"].numpy(), want)
    default = ClipDataset(root, num_frames=4, split="train")
    assert default.stride == 4  # non-overlapping by default


def test_resize_square_and_rectangular(dataset: tuple[Path, dict[int, Episode]]) -> None:
    root, _ = dataset
    assert ClipDataset(root, 2, image_size=8)[0]["video"].shape == (2, 3, 8, 8)
    item = ClipDataset(root, 2, image_size=(12, 20))[0]
    assert item["video"].shape == (2, 3, 12, 20)
    assert 0.0 <= float(item["video"].min()) and float(item["video"].max()) <= 1.0


def test_split_selection(dataset: tuple[Path, dict[int, Episode]]) -> None:
    root, _ = dataset
    seen = {}
    for split in LENGTHS:
        ds = ClipDataset(root, 5, split=split)
        assert all(f"/{split}/shard-" in s for s in ds.sources)
        seen[split] = {_episode_of(ds[i]["source"]) for i in range(len(ds))}
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"])
    assert ClipDataset(root, 5).num_actions == 5
    with pytest.raises(ValueError, match=r"split 'holdout'.*\['test', 'train', 'val'\]"):
        ClipDataset(root, 5, split="holdout")


def test_deterministic_and_picklable(dataset: tuple[Path, dict[int, Episode]]) -> None:
    root, _ = dataset
    a, b = ClipDataset(root, 4, stride=3), ClipDataset(root, 4, stride=3)
    assert len(a) == len(b)
    _ = a[len(a) - 1]  # fills the memory-map cache, which must not be pickled
    c = pickle.loads(pickle.dumps(a))
    for i in (0, len(a) // 2, len(a) - 1):
        assert a.locate(i) == b.locate(i) == c.locate(i)
        assert torch.equal(a[i]["video"], c[i]["video"])
    batch = next(iter(torch.utils.data.DataLoader(a, batch_size=3)))
    assert batch["video"].shape == (3, 4, 3, 16, 16) and batch["actions"].shape == (3, 3)


def test_videos_and_loose_arrays(tmp_path: Path) -> None:
    frames = moving_sprites(1, num_frames=20, image_size=32, seed=1).frames_uint8()[0]
    write_video(tmp_path / "videos" / "a.mp4", frames, fps=10)
    (tmp_path / "arrays").mkdir()
    np.save(tmp_path / "arrays" / "clip.npy", frames[:10])
    rows = np.stack([frames[:6], frames[6:12]])
    np.savez(tmp_path / "arrays" / "rows.npz", frames=rows, actions=np.arange(10).reshape(2, 5))
    ds = ClipDataset(tmp_path, num_frames=6)
    assert len(ds) == 3 + 1 + 2  # 20 // 6 from the mp4, 10 // 6 from clip.npy, one per row
    by_source = {ds.locate(i)[0]: ds[i] for i in range(len(ds))}
    assert (by_source[str(tmp_path / "videos" / "a.mp4")]["actions"] == -1).all()
    row1 = by_source[f"{tmp_path / 'arrays' / 'rows.npz'}#row=1"]
    np.testing.assert_array_equal(row1["actions"].numpy(), [5, 6, 7, 8, 9])
    np.testing.assert_array_equal((row1["video"].permute(0, 2, 3, 1) * 255).round().byte().numpy(), frames[6:12])
    video_item = ds[0]
    assert video_item["video"].shape == (6, 3, 32, 32)


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    frames = moving_sprites(1, num_frames=12, image_size=16, seed=0).frames_uint8()[0]
    write_video(tmp_path / "a.mp4", frames, fps=10)
    write_gif(tmp_path / "b.gif", frames, fps=10)
    return tmp_path


def test_one_bad_file_among_good_ones_is_skipped_with_a_warning(videos: Path) -> None:
    (videos / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(2048))
    (videos / "empty.webm").touch()
    with pytest.warns(SkippedFileWarning) as record:
        ds = ClipDataset(videos, num_frames=4)
    messages = " ".join(str(w.message) for w in record)
    assert "corrupt.mp4" in messages and "empty.webm" in messages
    assert len(ds) == 6 and {Path(s).name for s in ds.sources} == {"a.mp4", "b.gif"}
    assert {Path(p).name for p, _ in ds.skipped} == {"corrupt.mp4", "empty.webm"}
    with pytest.raises(ValueError, match="corrupt.mp4"):
        ClipDataset(videos, num_frames=4, strict=True)


def test_truncated_video_is_replaced_at_item_time(videos: Path) -> None:
    # faststart puts the index first: cut in half, the header still promises every frame
    frames = moving_sprites(1, num_frames=40, image_size=16, seed=5).frames_uint8()[0]
    data = write_video(videos / "a2_truncated.mp4", frames, fps=10).read_bytes()
    (videos / "a2_truncated.mp4").write_bytes(data[: len(data) // 2])
    ds = ClipDataset(videos, num_frames=4)
    assert len(ds) == 3 + 10 + 3  # a.mp4, a2_truncated.mp4 (by its header), b.gif
    bad = next(i for i in range(len(ds)) if "a2_truncated" in ds.locate(i)[0] and ds.locate(i)[1] == 36)
    with pytest.warns(SkippedFileWarning, match=r"a2_truncated\.mp4.*next readable clip"):
        item = ds[bad]
    assert item["video"].shape == (4, 3, 16, 16)
    assert item["source"].endswith("b.gif") and item["start"] == 0  # first clip of the next file
    with pytest.warns(SkippedFileWarning):
        again = ClipDataset(videos, num_frames=4)[bad]
    assert torch.equal(again["video"], item["video"])  # the replacement does not depend on history
    with pytest.raises(ValueError, match="a2_truncated"):
        ClipDataset(videos, num_frames=4, strict=True)[bad]


def test_unusable_inputs_raise_errors_naming_the_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "only" / "corrupt.mp4"
    corrupt.parent.mkdir()
    corrupt.write_bytes(np.random.default_rng(1).bytes(1024))
    with pytest.warns(SkippedFileWarning), pytest.raises(ValueError, match="corrupt.mp4"):
        ClipDataset(corrupt.parent, num_frames=4)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.warns(SkippedFileWarning), pytest.raises(ValueError, match=r"empty\.mp4.*empty \(0 bytes\)"):
        ClipDataset(empty, num_frames=4)
    short = write_video(tmp_path / "short" / "short.mp4", np.zeros((3, 16, 16, 3), np.uint8), fps=5)
    with pytest.warns(SkippedFileWarning), pytest.raises(ValueError, match=r"short\.mp4.*3 frame\(s\), fewer than"):
        ClipDataset(short, num_frames=4)
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "notes.txt").write_text("no videos here")
    with pytest.raises(ValueError, match="No videos or frame arrays found"):
        ClipDataset(tmp_path / "nothing", num_frames=4)
    with pytest.raises(FileNotFoundError):
        ClipDataset(tmp_path / "missing", num_frames=4)


def test_mismatched_sizes_need_a_resize(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((4, 16, 16, 3), np.uint8))
    np.save(tmp_path / "b.npy", np.zeros((4, 16, 24, 3), np.uint8))
    with pytest.raises(ValueError, match=r"b\.npy has 16x24.*a\.npy has 16x16.*image_size"):
        ClipDataset(tmp_path, num_frames=2)
    assert ClipDataset(tmp_path, num_frames=2, image_size=8)[3]["video"].shape == (2, 3, 8, 8)


def test_split_needs_a_manifest(videos: Path, dataset: tuple[Path, dict[int, Episode]]) -> None:
    with pytest.raises(ValueError, match="split='train' needs a recorded data set"):
        ClipDataset(videos, num_frames=4, split="train")
    root, _ = dataset
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClipDataset([root], num_frames=4, split="val")  # no loose files: no warning
    with pytest.warns(SkippedFileWarning, match="belong to no recorded data set"):
        ds = ClipDataset([root, videos], num_frames=4, image_size=16, split="val")
    assert all("/val/" in s for s in ds.sources)


def test_missing_or_corrupt_shard(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path / "ds", {"env": {"name": "toy"}}, frames_per_shard=5)
    for seed in range(2):
        writer.add("train", _episode(6, seed))
    manifest = writer.close()
    (tmp_path / "ds" / manifest["shards"][0]["path"]).unlink()
    with pytest.warns(SkippedFileWarning, match="lists it but it does not exist"):
        ds = ClipDataset(tmp_path / "ds", num_frames=3)
    assert len(ds) == 2
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK not really a zip")
    with pytest.raises(ShardFormatError, match="bad.npz"):
        load_shard(bad)


def test_writer_refuses_to_overwrite_by_accident(tmp_path: Path) -> None:
    for overwrite in (False, True):
        writer = ShardWriter(tmp_path, {"env": {"name": "toy"}}, overwrite=overwrite)
        writer.add("train" if not overwrite else "val", _episode(4, 0))
        writer.close()
        if not overwrite:
            with pytest.raises(FileExistsError, match="overwrite"):
                ShardWriter(tmp_path, {"env": {"name": "toy"}})
    assert not (tmp_path / "train").exists()  # the old data set's shards were removed
    assert list(read_manifest(tmp_path)["splits"]) == ["val"]


def test_synthetic_clip_dataset() -> None:
    ds = SyntheticClipDataset(5, num_frames=6, image_size=(16, 24), seed=2)
    item = ds[3]
    assert len(ds) == 5 and item["video"].shape == (6, 3, 16, 24) and item["actions"].shape == (5,)
    assert item["actions"].dtype == torch.int64 and 0 <= int(item["actions"].min()) and int(item["actions"].max()) < 5
    assert torch.equal(item["video"], SyntheticClipDataset(5, 6, (16, 24), seed=2)[3]["video"])
    assert not torch.equal(ds[0]["video"], ds[1]["video"])
    with pytest.raises(IndexError):
        ds[5]
