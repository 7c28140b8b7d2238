"""A component's config is captured from its constructor's signature (``register_to_config`` style)."""

from __future__ import annotations

import pytest

import worldmodels
from worldmodels.interfaces import Component


class _Base(Component):
    def __init__(self, width: int = 4, levels: list[int] | None = None, name_hint: str = "base") -> None:
        super().__init__()
        if levels is not None:
            width = len(levels)
            self._record_config(width=width)  # a derived value is recorded on top
        self.width = width


class _Child(_Base):
    def __init__(self, depth: int = 2, **kwargs) -> None:  # noqa: ANN003
        super().__init__(width=kwargs.pop("width", 8), **kwargs)
        self.depth = depth


class _Star(Component):
    def __init__(self, *sizes: int, scale: float = 1.0) -> None:
        super().__init__()


def test_arguments_and_defaults_are_captured() -> None:
    assert _Base().get_config() == {"name": None, "width": 4, "levels": None, "name_hint": "base"}
    assert _Base(6, name_hint="x").get_config() == {"name": None, "width": 6, "levels": None, "name_hint": "x"}


def test_derived_values_are_recorded_on_top() -> None:
    config = _Base(width=99, levels=[2, 2, 2]).get_config()
    assert config["width"] == 3 and config["levels"] == [2, 2, 2]
    rebuilt = _Base(**{k: v for k, v in config.items() if k != "name"})
    assert rebuilt.width == 3 and rebuilt.get_config() == config


def test_the_outermost_constructor_speaks_for_a_subclass() -> None:
    child = _Child(depth=3, name_hint="c")
    # the child's own arguments (its **kwargs spread out), not what it passed to the base class
    assert child.get_config() == {"name": None, "depth": 3, "name_hint": "c"}
    assert _Child(depth=1, name_hint="c", width=5).width == 5


def test_positional_varargs_are_refused_with_advice() -> None:
    assert _Star(scale=2.0).get_config() == {"name": None, "scale": 2.0}
    with pytest.raises(TypeError, match="give them by name"):
        _Star(1, 2)


@pytest.mark.parametrize("preset", ["genie-tiny", "iris-tiny"])
def test_every_preset_component_rebuilds_from_its_config(preset: str) -> None:
    model = worldmodels.build(preset)
    for kind in ("tokenizer", "action_model", "dynamics", "sampler"):
        component = getattr(model, kind)
        config = component.get_config()
        again = worldmodels.build(config["name"], kind=kind, **{k: v for k, v in config.items() if k != "name"})
        assert again.get_config() == config, kind
        assert sorted(again.state_dict()) == sorted(component.state_dict()), kind
