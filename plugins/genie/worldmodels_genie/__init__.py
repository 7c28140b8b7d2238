"""The Genie plug-in for worldmodels (Bruce et al., 2024, "Genie: Generative Interactive Environments").

Registers, through the ``worldmodels.plugins`` entry point ``genie = "worldmodels_genie:register"``:

* tokenizer ``st-vivit`` (:mod:`worldmodels_genie.tokenizer`),
* action model ``genie-lam`` (:mod:`worldmodels_genie.latent_action_model`),
* dynamics ``maskgit`` (:mod:`worldmodels_genie.dynamics`),
* samplers ``maskgit`` and ``argmax`` (:mod:`worldmodels_genie.sampler`),
* model presets ``genie-tiny``, ``genie-small``, ``genie-large`` (:mod:`worldmodels_genie.presets`),
* training recipes ``coinrun-cpu``, ``coinrun-gpu``, ``genie-large-fsdp`` (YAML in ``configs/recipe/``).

Names known from another library (``GenieConfig``, ``create_genie_small``, ``create_genie_large``)
live in :mod:`worldmodels_genie.compat` and are importable from this package.

No component is imported at package import time: the library calls :func:`register` when it first
needs a name it does not know, so it can attribute the components to this distribution
(:func:`worldmodels.plugins.register_package` and :func:`~worldmodels.plugins.lazy_attributes`
do the importing).
"""

from __future__ import annotations

from worldmodels.plugins import lazy_attributes, register_package

COMPONENT_MODULES: tuple[str, ...] = ("tokenizer", "latent_action_model", "dynamics", "sampler", "presets")
"""Modules whose import registers components, in import order."""

_LAZY = {
    "GenieConfig": "compat",
    "create_genie_small": "compat",
    "create_genie_large": "compat",
    "STViViTTokenizer": "tokenizer",
    "LatentActionModel": "latent_action_model",
    "MaskGITDynamics": "dynamics",
    "MaskGITSampler": "sampler",
    "ArgmaxSampler": "sampler",
}


def register() -> None:
    """Register Genie's components, presets and training recipes with worldmodels (the plug-in entry point).

    The recipes (``recipe=coinrun-cpu``, ``coinrun-gpu``, ``genie-large-fsdp``) are Hydra YAML files
    under ``worldmodels_genie/configs/recipe/``, added to the config search path.
    """
    register_package(__name__, COMPONENT_MODULES)


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = ["COMPONENT_MODULES", "register", *_LAZY]
