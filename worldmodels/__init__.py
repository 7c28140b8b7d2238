"""worldmodels: learned world models in PyTorch, a small core plus plug-ins.

Quick start::

    import worldmodels
    print(worldmodels.list_components())
    model = worldmodels.build("genie-tiny")
"""

from worldmodels._version import __version__
from worldmodels.build import build, count_parameters
from worldmodels.build_config import ConfigError, resolve_model_config
from worldmodels.checkpoint import CheckpointError
from worldmodels.interfaces import (
    ActionModel,
    Component,
    Dynamics,
    DynamicsCache,
    DynamicsStream,
    Sampler,
    StepOutput,
    Tokenizer,
)
from worldmodels.registry import (
    KINDS,
    RegistryError,
    UnknownComponentError,
    list_components,
    register,
)
from worldmodels.world_model import WorldModel

__all__ = [
    "KINDS",
    "ActionModel",
    "CheckpointError",
    "Component",
    "ConfigError",
    "Dynamics",
    "DynamicsCache",
    "DynamicsStream",
    "RegistryError",
    "Sampler",
    "StepOutput",
    "Tokenizer",
    "UnknownComponentError",
    "WorldModel",
    "__version__",
    "build",
    "count_parameters",
    "list_components",
    "register",
    "resolve_model_config",
]
