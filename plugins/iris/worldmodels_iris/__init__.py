"""The IRIS plug-in for worldmodels (Micheli et al., 2023, "Transformers are Sample-Efficient World Models").

Registers, through the ``worldmodels.plugins`` entry point ``iris = "worldmodels_iris:register"``:

* dynamics ``iris-transformer`` (:mod:`worldmodels_iris.transformer`): a GPT over the tokens of
  each frame interleaved with the real action taken at it, with reward and episode-end heads;
* sampler ``autoregressive`` (:mod:`worldmodels_iris.sampler`): the next frame token by token,
  with a key/value cache;
* model preset ``iris-tiny`` (:mod:`worldmodels_iris.presets`): the per-frame ``frame-vq``
  tokenizer of the core, the ``recorded`` action model of the core, and the two parts above;
* training recipes ``iris-coinrun-cpu`` and ``iris-atari-cpu`` (YAML in ``configs/recipe/``).

Nothing in the core names IRIS: it is a plug-in exactly like a third party's would be.
"""

from __future__ import annotations

from worldmodels.plugins import lazy_attributes, register_package

COMPONENT_MODULES: tuple[str, ...] = ("transformer", "sampler", "presets")
"""Modules whose import registers components, in import order."""

_LAZY = {"IrisTransformer": "transformer", "AutoregressiveSampler": "sampler"}


def register() -> None:
    """Register IRIS's components, preset and recipes with worldmodels (the plug-in entry point)."""
    register_package(__name__, COMPONENT_MODULES)


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = ["COMPONENT_MODULES", "register", *_LAZY]
