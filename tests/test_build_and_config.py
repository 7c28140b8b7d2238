"""build(), overrides, hydra composition, and the refusal of arbitrary ``_target_``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import worldmodels
from worldmodels import ConfigError, WorldModel
from worldmodels.build_config import CONTEXT_KEYS, component_parameters
from worldmodels.config import component_defaults, compose, parse_overrides
from worldmodels.interfaces import COMPONENT_KINDS


def test_build_preset_returns_a_world_model_with_registered_parts() -> None:
    model = worldmodels.build("toy-world")
    assert isinstance(model, WorldModel)
    assert model.config["tokenizer"]["name"] == "toy-tokenizer"
    assert model.dynamics.vocab_size == model.tokenizer.vocab_size  # derived from the tokenizer


def test_override_forms_are_equivalent() -> None:
    a = worldmodels.build("toy-world", dynamics={"dim": 8})
    b = worldmodels.build("toy-world", **{"dynamics.dim": 8})
    c = worldmodels.build(compose(["model=toy-world", "dynamics.dim=8"]))
    assert a.config == b.config == c.config
    assert a.dynamics.get_config()["dim"] == 8


def test_swapping_a_component_resets_its_settings_and_adapts_the_dynamics() -> None:
    model = worldmodels.build("toy-world", tokenizer={"name": "toy-tokenizer", "patch": 8, "vocab_size": 5})
    assert model.token_grid == (2, 2)
    assert model.dynamics.vocab_size == 5
    assert model.dynamics.get_config()["token_grid"] == [2, 2]


def test_python_and_hydra_swaps_agree() -> None:
    python_built = worldmodels.build("toy-world", sampler="toy-argmax", action_model="toy-lam")
    hydra_built = worldmodels.build(compose(["model=toy-world", "sampler=toy-argmax", "action_model=toy-lam"]))
    assert python_built.config == hydra_built.config


def test_build_a_single_component_by_kind() -> None:
    tok = worldmodels.build("toy-tokenizer", kind="tokenizer", patch=2)
    assert isinstance(tok, worldmodels.Tokenizer) and tok.patch == 2


def test_build_on_meta_device_allocates_nothing() -> None:
    model = worldmodels.build("toy-world", device="meta")
    assert all(p.device.type == "meta" for p in model.parameters())
    assert worldmodels.count_parameters(model) > 0


def test_unknown_setting_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="did you mean 'dim'"):
        worldmodels.build("toy-world", dynamics={"dimm": 8})


def test_target_of_an_arbitrary_callable_is_refused() -> None:
    cfg = worldmodels.resolve_model_config("toy-world")
    cfg["sampler"] = {"_target_": "os.system", "command": "echo pwned"}
    with pytest.raises(ConfigError, match="Refusing _target_='os.system'"):
        worldmodels.build(cfg)


def test_target_of_a_registered_component_is_honoured() -> None:
    cfg = worldmodels.resolve_model_config("toy-world")
    cfg["sampler"] = {"_target_": "toy_components.ToyArgmax"}
    model = worldmodels.build(cfg)
    assert type(model.sampler).__name__ == "ToyArgmax"


def test_target_of_the_wrong_kind_is_refused() -> None:
    cfg = worldmodels.resolve_model_config("toy-world")
    cfg["sampler"] = {"_target_": "toy_components.ToyTokenizer"}
    with pytest.raises(ConfigError, match="registered tokenizer"):
        worldmodels.build(cfg)


def test_every_option_of_every_group_composes_and_builds() -> None:
    """Each preset, and each component swapped into a preset, composes and builds (on meta)."""
    listing = worldmodels.list_components()
    for preset in listing["model"]:
        cfg = compose([f"model={preset}"])
        model = worldmodels.build(cfg, device="meta")
        assert model.name == preset
    for kind in COMPONENT_KINDS:
        for name in listing[kind]:
            cfg = compose(["model=toy-world", f"{kind}={name}"])
            assert cfg[kind]["name"] == name


def test_config_nodes_cover_constructor_arguments() -> None:
    """Every constructor argument is a config setting, a value the model derives, or has a default."""
    from worldmodels import registry

    for kind in COMPONENT_KINDS:
        for entry in registry.entries(kind):
            node = component_defaults(kind, entry.name)
            for pname, param in component_parameters(entry.obj).items():
                covered = pname in node or pname in CONTEXT_KEYS[kind] or param.default is not param.empty
                assert covered, f"{kind} {entry.name}: argument {pname!r} has no config entry"
            assert set(node) - {"name"} <= set(component_parameters(entry.obj))


def test_compose_errors_explain_what_to_do() -> None:
    with pytest.raises(ConfigError, match="Pick a model first"):
        compose(["tokenizer=toy-tokenizer"])
    with pytest.raises(ConfigError, match="Options:"):
        compose(["model=toy-world", "dynamics=no-such-dynamics"])


def test_a_component_key_under_model_is_refused_not_dropped() -> None:
    from worldmodels.build_config import resolve_model_config

    cfg = compose(["model=toy-world", "dynamics.dim=24"])
    assert resolve_model_config(cfg)["dynamics"]["dim"] == 24  # the group is what the model is built from
    wrong = compose(["model=toy-world", "+model.dynamics.dim=24"])  # hydra accepts it; building would ignore it
    with pytest.raises(ConfigError, match=r"model\.dynamics \(dim\) is set next to the composed dynamics group.*dynamics\.dim=24"):
        resolve_model_config(wrong)


def test_parse_overrides_reads_yaml_values() -> None:
    assert parse_overrides(["a=1", "b.c=x", "d=[1, 2]", "e=true"]) == {"a": 1, "b.c": "x", "d": [1, 2], "e": True}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["oops"])


def test_compose_works_inside_a_hydra_main_application(tmp_path) -> None:
    """Inside ``@hydra.main`` both the app's own config and our compose() work, and the app's state survives."""
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        import toy_components  # noqa: F401
        import hydra
        from hydra.core.global_hydra import GlobalHydra
        import worldmodels
        from worldmodels.config import compose, register_configs

        register_configs()

        @hydra.main(config_path=None, config_name="worldmodels", version_base=None)
        def main(cfg):
            model = worldmodels.build(cfg)
            again = worldmodels.build(compose(["model=toy-world", "dynamics.dim=4"]))
            assert GlobalHydra.instance().is_initialized()
            print("OK", model.dynamics.get_config()["dim"], again.dynamics.get_config()["dim"])

        main()
        """
    ))
    out = subprocess.run(
        [sys.executable, str(app), "model=toy-world", "dynamics.dim=12", f"hydra.run.dir={tmp_path}/run"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "OK 12 4" in out.stdout


def test_world_model_rejects_frames_of_the_wrong_size() -> None:
    model = worldmodels.build("toy-world")
    with pytest.raises(ValueError, match="expects 3x16x16"):
        model.infer_actions(torch.rand(1, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="latent actions: use indices 0..3"):
        model.play(torch.rand(1, 3, 16, 16), 7)
