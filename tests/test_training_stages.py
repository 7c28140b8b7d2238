"""A model declares its training stages; a plug-in can add one; stage=all runs what the model declares."""

from __future__ import annotations

import pytest
import torch
from toy_components import ToyDynamics

import worldmodels
from worldmodels import registry
from worldmodels.build_config import ConfigError
from worldmodels.data.synthetic import SyntheticClipDataset
from worldmodels.training import TrainConfig, Trainer, TrainingStage, register_stage, train
from worldmodels.training.stages import _STAGES, default_stages, get_stage, model_stages


def _cfg(tmp_path, **values) -> TrainConfig:  # noqa: ANN001, ANN003
    base = dict(steps=3, batch_size=4, warmup=1, log_every=1, checkpoint_every=0, image_every=0,
                run_dir=str(tmp_path / "run"), progress=False, tensorboard=False, device="cpu")
    return TrainConfig(**{**base, **values})


def test_components_declare_the_stages_of_a_model() -> None:
    toy = worldmodels.build("toy-world")
    assert toy.training_stages() == ("tokenizer", "lam", "dynamics") and default_stages(toy) == ("tokenizer", "dynamics")
    recorded = worldmodels.build("toy-world", action_model={"name": "recorded", "num_actions": 5})
    assert recorded.training_stages() == ("tokenizer", "dynamics")  # recorded actions have nothing to learn alone


def test_a_stage_the_model_does_not_declare_is_refused_before_training(tmp_path) -> None:
    model = worldmodels.build("toy-world", action_model={"name": "recorded", "num_actions": 5})
    with pytest.raises(ConfigError, match="has no 'lam' stage"):
        Trainer(model, _cfg(tmp_path, stage="lam"), SyntheticClipDataset(8, 4, 16))
    with pytest.raises(ConfigError, match="not one of"):
        TrainConfig(stage="decoder")


def test_a_plugin_stage_trains_what_it_names_and_loads_earlier_stages(tmp_path) -> None:
    def head_loss(model, batch, freeze):  # noqa: ANN001, ANN202
        return model.dynamics_loss(batch["video"], train_action_model=False)

    stage = TrainingStage("toy-head", ("dynamics",), head_loss, loads=(("tokenizer", "tokenizer"),),
                          requires=(("tokenizer", "tokenizer"),))

    class HeadDynamics(ToyDynamics):
        training_stages = ("dynamics", "toy-head")

    registry.register("dynamics", "toy-head-dynamics", override=True)(HeadDynamics)
    register_stage(stage)
    try:
        assert get_stage("toy-head") is stage and TrainConfig(stage="toy-head").stage == "toy-head"
        model = worldmodels.build("toy-world", dynamics={"name": "toy-head-dynamics", "dim": 16})
        assert model_stages(model) == ("tokenizer", "lam", "dynamics", "toy-head")
        assert default_stages(model) == ("tokenizer", "dynamics")  # a plug-in stage runs when asked for
        data = SyntheticClipDataset(8, 4, 16)
        with pytest.raises(ConfigError, match="needs a trained tokenizer from the tokenizer stage"):
            Trainer(model, _cfg(tmp_path, stage="toy-head"), data).fit()
        first = train(_cfg(tmp_path, stage="all"), model=model, train_data=data)
        assert list(first.stages) == ["tokenizer", "dynamics"]
        frozen = {k: v.clone() for k, v in model.tokenizer.state_dict().items()}
        result = train(_cfg(tmp_path, stage="toy-head"), model=model, train_data=data)
        trainer_run = (tmp_path / "run" / "toy-head")
        assert result.stages["toy-head"].step == 3 and (trainer_run / "final" / "config.json").is_file()
        for name, value in model.tokenizer.state_dict().items():
            assert torch.equal(value, frozen[name]), f"the toy-head stage changed the tokenizer's {name}"
    finally:
        registry.unregister("dynamics", "toy-head-dynamics")
        _STAGES.pop("toy-head", None)


def test_register_stage_refuses_bad_stages() -> None:
    loss = get_stage("tokenizer").loss
    with pytest.raises(ValueError, match="other than 'all'"):
        register_stage(TrainingStage("all", ("tokenizer",), loss))
    with pytest.raises(ValueError, match="not components"):
        register_stage(TrainingStage("x", ("decoder",), loss))
    with pytest.raises(ValueError, match="exists already"):
        register_stage(TrainingStage("tokenizer", ("dynamics",), loss))
