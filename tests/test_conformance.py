"""The conformance checks of :mod:`worldmodels.testing`, run over every registered component.

Each component is embedded in the preset named by its class's ``conformance_model`` attribute
(``toy-world`` when it has none) with its ``conformance_config`` settings, so plug-in components
get the same checks as the library's own.
"""

from __future__ import annotations

import re

import worldmodels
from worldmodels import registry
from worldmodels.interfaces import COMPONENT_KINDS
from worldmodels.testing import ComponentConformance


def _classes() -> dict[str, type]:
    made: dict[str, type] = {}
    for kind in COMPONENT_KINDS:
        for name in worldmodels.list_components(kind):
            cls = registry.get_entry(kind, name).obj
            preset = getattr(cls, "conformance_model", None) or "toy-world"
            test_name = "Test_" + re.sub(r"\W", "_", f"{kind}_{name}")
            made[test_name] = type(test_name, (ComponentConformance,), {"kind": kind, "name": name,
                                                                         "model_preset": preset})
    return made


globals().update(_classes())


def test_every_registered_component_has_a_conformance_class() -> None:
    expected = {f"{k}_{n}" for k in COMPONENT_KINDS for n in worldmodels.list_components(k)}
    made = {cls.kind + "_" + cls.name for cls in _classes().values()}
    assert made == expected
