"""Configuration with hydra-core: config groups per kind, command-line overrides, safe composition.

The registry is the single source of truth. :func:`register_configs` turns it into Hydra
config groups in Hydra's ``ConfigStore``:

* ``tokenizer/<name>``, ``action_model/<name>``, ``dynamics/<name>``, ``sampler/<name>``: one
  option per registered component, holding ``name`` and the component's own default settings;
* ``model/<preset>``: one option per whole-model preset. It selects the preset's component
  options ``tokenizer/<preset>`` etc. (the preset's settings) through its defaults list and sets
  the model-level keys under ``model``.

So, on the command line and in Python alike::

    worldmodels show model=genie-tiny tokenizer=frame-vq sampler.steps=8
    cfg = worldmodels.config.compose(["model=genie-tiny", "tokenizer=frame-vq"])
    model = worldmodels.build(cfg)      # same as build("genie-tiny", tokenizer="frame-vq")

Swapping a component (``tokenizer=frame-vq``) selects another option of its group, so the old
component's settings never leak into the new one. Plug-ins add YAML options (recipes, named
variants) with :func:`add_search_path`. Configs name components by ``name``; ``_target_`` is
honoured only when it is the import path of a registered component (see
:mod:`worldmodels.build_config`): a config can never make the library call arbitrary code, and
the library never calls ``hydra.utils.instantiate``.

Inside your own ``@hydra.main`` application, call :func:`register_configs` before the app runs
and use ``config_name="worldmodels"``, or pass the composed config to :func:`worldmodels.build`;
:func:`compose` also works there (it saves and restores the application's Hydra state).
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from worldmodels import registry
from worldmodels.build_config import CONTEXT_KEYS, ConfigError, component_parameters, to_container
from worldmodels.interfaces import COMPONENT_KINDS

PRIMARY_CONFIG = "worldmodels"
"""Name under which the primary config (``worldmodels/configs/primary.yaml``) is stored."""

_CONFIG_DIR = Path(__file__).parent / "configs"
_search_paths: list[str] = []


def add_search_path(path: str) -> None:
    """Add a Hydra search path (``pkg://module.configs`` or ``file:///dir``) for config groups.

    Plug-ins call this from their ``register`` function to contribute YAML options, for
    example training recipes under ``recipe/``.
    """
    if path not in _search_paths:
        _search_paths.append(path)


def search_paths() -> list[str]:
    """The search paths added with :func:`add_search_path` (after plug-in discovery)."""
    registry.list_components()  # discovers plug-ins, which add their paths
    return list(_search_paths)


def _json_default(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def component_defaults(kind: str, name: str) -> dict[str, Any]:
    """``{"name": name, **default settings}`` of a registered component.

    Settings the model derives (:data:`~worldmodels.build_config.CONTEXT_KEYS`) and defaults
    that are not plain JSON values are left out.
    """
    entry = registry.get_entry(kind, name)
    node: dict[str, Any] = {"name": name}
    for pname, param in component_parameters(entry.obj).items():
        if pname in CONTEXT_KEYS[kind] or param.default is inspect.Parameter.empty:
            continue
        if _json_default(param.default):
            node[pname] = copy.deepcopy(param.default)
    return node


def _model_options(preset: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The ``model/<preset>`` node and its per-kind component nodes."""
    from worldmodels.build_config import resolve_model_config

    cfg = resolve_model_config(preset)
    components: dict[str, dict[str, Any]] = {}
    for kind in COMPONENT_KINDS:
        node = to_container(cfg[kind])
        name = node.get("name")
        if name is None:
            raise ConfigError(f"Preset {preset!r} names no {kind}: its {kind} node is {node!r}.")
        base = component_defaults(kind, name)
        components[kind] = {**base, **{k: v for k, v in node.items() if k not in CONTEXT_KEYS[kind]}}
    model_keys = {k: v for k, v in cfg.items() if k not in COMPONENT_KINDS}
    model_keys["name"] = preset
    defaults: list[Any] = [{f"/{kind}": preset} for kind in COMPONENT_KINDS] + ["_self_"]
    return {"defaults": defaults, "model": model_keys}, components


def register_configs() -> None:
    """Fill Hydra's ``ConfigStore`` with one option per registered component and preset.

    Idempotent; call it again after registering new components. :func:`compose` calls it.

    Raises:
        ConfigError: if a preset name collides with a component name of the same kind.
    """
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    store = ConfigStore.instance()
    listing = registry.list_components()
    assert isinstance(listing, dict)
    for kind in COMPONENT_KINDS:
        for name in listing[kind]:
            store.store(group=kind, name=name, node=component_defaults(kind, name), provider="worldmodels")
    for preset in listing["model"]:
        model_node, components = _model_options(preset)
        for kind, node in components.items():
            if preset in listing[kind]:
                raise ConfigError(
                    f"The preset {preset!r} has the same name as a registered {kind}; rename one of them so "
                    f"the config option {kind}/{preset} is unambiguous."
                )
            store.store(group=kind, name=preset, node=node, provider="worldmodels")
        store.store(group="model", name=preset, node=model_node, package="_global_", provider="worldmodels")
    from worldmodels.training.config import DataConfig, TrainConfig

    # the train: and data: sections are typed by the dataclasses (one source of their fields and defaults)
    schema = {"train": OmegaConf.structured(TrainConfig), "data": OmegaConf.structured(DataConfig)}
    primary = OmegaConf.merge(schema, OmegaConf.load(_CONFIG_DIR / "primary.yaml"))
    store.store(name=PRIMARY_CONFIG, node=primary, provider="worldmodels")


@contextmanager
def _hydra_context() -> Iterator[None]:
    """Initialise Hydra for our configs, even inside an application that already did."""
    from hydra import initialize
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton

    backup = copy.deepcopy(Singleton._instances.get(GlobalHydra))
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize(config_path=None, version_base=None, job_name="worldmodels"):
            yield
    finally:
        if backup is None:
            Singleton._instances.pop(GlobalHydra, None)
        else:
            Singleton._instances[GlobalHydra] = backup


def compose(overrides: Sequence[str] = (), config_name: str = PRIMARY_CONFIG) -> Any:
    """Compose the primary config with command-line style overrides.

    Args:
        overrides: e.g. ``["model=genie-tiny", "tokenizer=frame-vq", "sampler.steps=8"]``.
        config_name: the primary config.

    Returns:
        An ``omegaconf.DictConfig`` with ``model`` (model-level keys), one node per component
        kind, and the other sections of the primary config (training, data).

    Raises:
        ConfigError: when Hydra rejects an override (with its message and what exists).

    Example:
        >>> cfg = compose(["model=genie-tiny", "sampler.steps=4"])  # doctest: +SKIP
        >>> cfg.sampler.steps  # doctest: +SKIP
        4
    """
    from hydra import compose as hydra_compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    paths = [f"file://{_CONFIG_DIR}", *search_paths()]
    extra = [f"hydra.searchpath=[{','.join(paths)}]"]
    with _hydra_context():
        try:
            return hydra_compose(config_name=config_name, overrides=[*extra, *overrides])
        except (HydraException, OmegaConfBaseException) as exc:
            raise ConfigError(_explain(exc, overrides)) from exc


def _explain(exc: Exception, overrides: Sequence[str]) -> str:
    listing = registry.list_components()
    assert isinstance(listing, dict)
    text = f"Could not compose the config from {list(overrides)}: {exc}"
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if "could not be converted" in str(cause) or "ValidationError" in type(cause).__name__:
        # a value of the wrong type for a typed section (train., data.): say which setting and what it takes
        detail = str(cause).splitlines()[0] if str(cause) else ""
        return (f"{text} ({detail}). The train: and data: settings are typed (worldmodels.training.TrainConfig / DataConfig); "
                "give a value of the setting's type, e.g. train.steps=200.")
    groups = ", ".join(f"{k}=[{', '.join(v)}]" for k, v in listing.items())
    hint = (
        " Pick a model first (model=NAME) to swap or set its parts; add a new key with '+key=value'."
        if not any(o.startswith("model=") for o in overrides)
        else ""
    )
    return f"{text}.{hint} Options: {groups}."


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings (values as YAML) into keyword overrides for :func:`worldmodels.build`.

    ``tokenizer=frame-vq`` swaps a component, ``sampler.steps=8`` sets a nested value.

    Raises:
        ConfigError: for an item without ``=``.
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"Override {item!r} is not of the form key=value (e.g. sampler.steps=8).")
        out[key.lstrip("+")] = yaml.safe_load(value) if value else None
    return out


def to_yaml(cfg: Mapping[str, Any]) -> str:
    """Render a config as YAML (for printing resolved configs)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(to_container(cfg)))
