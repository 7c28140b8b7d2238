"""Trainer building blocks without training: data order, schedule, settings, RNG, checkpoint files."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodels.build_config import ConfigError
from worldmodels.cli.train import expand_shorthands
from worldmodels.training import DataConfig, GlobalBatchSampler, TrainConfig, warmup_cosine
from worldmodels.training.checkpointing import (
    capture_rng,
    checkpoint_name,
    list_checkpoints,
    prune_checkpoints,
    remove_stale_temporaries,
    restore_rng,
)
from worldmodels.training.sampler import split_batch

# ---------------------------------------------------------------------------------------- data order


def _global_batches(world_size: int, grad_accum: int, steps: int, start: int = 0, n: int = 10,
                    batch: int = 4) -> list[list[int]]:
    """The global batch of each step, reassembled from every rank's micro-batches."""
    per_rank = [list(GlobalBatchSampler(n, batch, rank=r, world_size=world_size, grad_accum=grad_accum, seed=3,
                                        start=start, num_steps=steps)) for r in range(world_size)]
    out = []
    for s in range(steps):
        step = []
        for r in range(world_size):
            for micro in per_rank[r][s * grad_accum : (s + 1) * grad_accum]:
                step.extend(micro)
        out.append(step)
    return out


def test_global_batch_is_the_same_on_any_world_size_and_accumulation() -> None:
    reference = _global_batches(1, 1, steps=6)
    assert _global_batches(2, 1, steps=6) == reference
    assert _global_batches(2, 2, steps=6) == reference
    assert _global_batches(4, 1, steps=6) == reference


def test_ranks_read_disjoint_shares_of_each_batch() -> None:
    ranks = [list(GlobalBatchSampler(100, 8, rank=r, world_size=2, seed=0, num_steps=3)) for r in range(2)]
    for s in range(3):
        assert len(ranks[0][s]) == len(ranks[1][s]) == 4
        assert not set(ranks[0][s]) & set(ranks[1][s])


def test_every_epoch_is_a_permutation_and_epochs_differ() -> None:
    sampler = GlobalBatchSampler(10, 5, seed=1)
    first, second = sampler.stream(0, 10), sampler.stream(10, 10)
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second


def test_resuming_at_a_position_continues_the_stream_exactly() -> None:
    uninterrupted = _global_batches(1, 1, steps=7)
    resumed = _global_batches(2, 1, steps=4, start=3 * 4)  # resumed on another world size
    assert resumed == uninterrupted[3:]


def test_batch_must_divide_over_ranks_and_accumulation() -> None:
    assert split_batch(8, 2, 2) == 2
    with pytest.raises(ValueError, match="not divisible"):
        split_batch(6, 4, 1)


# ---------------------------------------------------------------------------------------- schedule


def test_warmup_is_linear_then_cosine_reaches_the_floor() -> None:
    values = [warmup_cosine(s, total_steps=100, warmup=10, min_ratio=0.1) for s in range(100)]
    assert values[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    after = values[10:]
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert warmup_cosine(100, total_steps=100, warmup=10, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(5, total_steps=10, warmup=0, min_ratio=0.0) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------- settings


def test_yaml_defaults_match_the_dataclasses() -> None:
    from worldmodels.config import compose
    from worldmodels.training import configs_from

    train_cfg, data_cfg = configs_from(compose([]))
    assert train_cfg == TrainConfig()
    assert data_cfg == DataConfig()
    assert TrainConfig().betas == (0.9, 0.9) and TrainConfig().lr == 3e-4 and TrainConfig().weight_decay == 1e-4


def test_unknown_setting_is_rejected_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'grad_clip'"):
        TrainConfig.from_dict({"grad_clipp": 1.0})
    with pytest.raises(ConfigError, match="did you mean 'path'"):
        DataConfig.from_dict({"pth": "x"})


@pytest.mark.parametrize("bad", [{"stage": "decoder"}, {"precision": "fp16"}, {"steps": 0}, {"betas": [0.9]},
                                 {"per_stage": {"dynamics": {"lrr": 1.0}}}, {"per_stage": {"vq": {}}}])
def test_invalid_settings_name_the_problem(bad: dict) -> None:
    key = next(iter(bad))
    with pytest.raises(ConfigError, match=key if key != "per_stage" else "per_stage"):
        TrainConfig(**bad)


def test_per_stage_settings_apply_to_their_stage_only() -> None:
    cfg = TrainConfig(stage="all", lr=3e-4, per_stage={"dynamics": {"lr": 3e-5, "steps": 7}})
    assert cfg.stages == ("tokenizer", "dynamics")
    assert cfg.for_stage("tokenizer").lr == 3e-4
    dyn = cfg.for_stage("dynamics")
    assert (dyn.lr, dyn.steps, dyn.stage) == (3e-5, 7, "dynamics")
    assert dataclasses.asdict(cfg)["stage"] == "all"


def test_cli_shorthands_expand() -> None:
    assert expand_shorthands(["stage=lam", "data=/d", "resume=true", "train.steps=3", "model=toy-world"]) == [
        "train.stage=lam", "data.path=/d", "train.resume=true", "train.steps=3", "model=toy-world"]


# ---------------------------------------------------------------------------------------- RNG and files


def test_rng_round_trip_restores_every_generator() -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    saved = capture_rng()
    expected = (torch.rand(3), np.random.rand(3), random.random(), random.gauss(0, 1))
    torch.manual_seed(9)
    np.random.seed(9)
    random.seed(9)
    restore_rng(saved)
    got = (torch.rand(3), np.random.rand(3), random.random(), random.gauss(0, 1))
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
    assert expected[2:] == got[2:]


def test_prune_keeps_the_newest_and_stale_temporaries_are_removed(tmp_path: Path) -> None:
    for step in (5, 10, 15, 20):
        (tmp_path / checkpoint_name(step)).mkdir()
    (tmp_path / ".step-000025.tmp-abc").mkdir()
    (tmp_path / "step-000007.corrupt").mkdir()
    removed = prune_checkpoints(tmp_path, keep_last=2)
    assert sorted(p.name for p in removed) == ["step-000005", "step-000010"]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [15, 20]
    assert remove_stale_temporaries(tmp_path) == [tmp_path / ".step-000025.tmp-abc"]
    assert prune_checkpoints(tmp_path, keep_last=0) == []


def test_the_composed_sections_are_the_dataclasses_and_refuse_wrong_types() -> None:
    from worldmodels.config import compose
    from worldmodels.training import configs_from

    cfg = compose(["train.steps=7", "data.frame_skip=2"])
    train_cfg, data_cfg = configs_from(cfg)
    assert isinstance(train_cfg, TrainConfig) and train_cfg.steps == 7 and data_cfg.frame_skip == 2
    with pytest.raises(ConfigError, match="typed"):
        compose(["train.steps=many"])
    with pytest.raises(ConfigError):
        compose(["train.stepz=7"])  # an unknown setting is refused too
