"""Plug-in discovery through the ``worldmodels.plugins`` entry-point group.

A plug-in distribution declares, in its ``pyproject.toml``::

    [project.entry-points."worldmodels.plugins"]
    genie = "worldmodels_genie:register"

The entry point names a *function to call*; it registers the plug-in's components with
:func:`worldmodels.register`. Discovery is lazy (the registry calls :func:`load_plugins` only
on a name it does not know, or when listing), each failing plug-in becomes a warning naming
it, and ``WORLDMODELS_DISABLE_PLUGIN_AUTOLOAD=1`` switches it off.

The ``entrypoints`` package is in maintenance mode, so it is used in exactly one function,
:func:`iter_entry_points`, which can be swapped for :mod:`importlib.metadata` alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ENTRY_POINT_GROUP = "worldmodels.plugins"
"""The entry-point group plug-ins register under."""

DISABLE_ENV_VAR = "WORLDMODELS_DISABLE_PLUGIN_AUTOLOAD"
"""Set this environment variable to ``1`` to switch automatic plug-in loading off."""


class PluginWarning(UserWarning):
    """A plug-in failed to load; the library goes on without it."""


@dataclass(frozen=True)
class PluginInfo:
    """One discovered plug-in.

    Attributes:
        name: the entry point's name.
        target: ``module:function`` the entry point names.
        distribution: the distribution (package) that provides it, with its version.
        loaded: whether its ``register`` function ran without error.
        error: the error text when it failed.
    """

    name: str
    target: str
    distribution: str
    loaded: bool
    error: str | None = None


@dataclass(frozen=True)
class _EntryPoint:
    name: str
    target: str
    distribution: str
    load: Callable[[], object]


def canonical_distribution_name(name: str) -> str:
    """The PEP 503 form of a distribution name (``worldmodels_genie`` -> ``worldmodels-genie``).

    Installers record names differently (a wheel's metadata may say ``worldmodels_genie``), so
    messages use this one spelling, the one users type after ``pip install``.
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def iter_entry_points() -> list[_EntryPoint]:
    """All entry points of :data:`ENTRY_POINT_GROUP` on ``sys.path`` (the one use of ``entrypoints``)."""
    import entrypoints

    found = []
    for ep in entrypoints.get_group_all(ENTRY_POINT_GROUP):
        distro = (
            f"{canonical_distribution_name(ep.distro.name)} {ep.distro.version}"
            if ep.distro is not None
            else "unknown distribution"
        )
        target = f"{ep.module_name}:{ep.object_name}" if ep.object_name else ep.module_name
        found.append(_EntryPoint(ep.name, target, distro, ep.load))
    return found


def autoload_disabled() -> bool:
    """Whether :data:`DISABLE_ENV_VAR` switches automatic plug-in loading off."""
    return os.environ.get(DISABLE_ENV_VAR, "").strip().lower() in {"1", "true", "yes", "on"}


_loaded: dict[str, PluginInfo] = {}
_attempted = False
_current_distribution: str | None = None


def current_distribution() -> str | None:
    """The distribution whose ``register`` function is running now (``None`` outside one)."""
    return _current_distribution


@contextlib.contextmanager
def _registering_for(distribution: str) -> Iterator[None]:
    global _current_distribution
    previous, _current_distribution = _current_distribution, distribution
    try:
        yield
    finally:
        _current_distribution = previous


def load_plugins(force: bool = False) -> dict[str, PluginInfo]:
    """Discover and register every installed plug-in once.

    Args:
        force: run discovery again even if it ran before, or if autoload is disabled.

    Returns:
        The plug-ins seen so far, keyed by entry-point name.
    """
    global _attempted
    if (_attempted and not force) or (autoload_disabled() and not force):
        return dict(_loaded)
    _attempted = True
    try:
        entry_points = iter_entry_points()
    except Exception as exc:  # a broken environment must not break the core
        warnings.warn(f"worldmodels could not list plug-ins ({exc!r}); continuing without them.", PluginWarning, stacklevel=2)
        return dict(_loaded)
    for ep in entry_points:
        if ep.name in _loaded and _loaded[ep.name].loaded:
            continue
        try:
            register_fn = ep.load()
            if not callable(register_fn):
                raise TypeError(f"entry point {ep.target} is not a callable register function")
            with _registering_for(ep.distribution):
                register_fn()
            _loaded[ep.name] = PluginInfo(ep.name, ep.target, ep.distribution, loaded=True)
        except Exception as exc:
            _loaded[ep.name] = PluginInfo(ep.name, ep.target, ep.distribution, loaded=False, error=repr(exc))
            warnings.warn(
                f"worldmodels plug-in {ep.name!r} ({ep.target}, from {ep.distribution}) failed to load and is "
                f"skipped: {exc!r}. Reinstall or uninstall that package, or set {DISABLE_ENV_VAR}=1.",
                PluginWarning,
                stacklevel=2,
            )
    return dict(_loaded)


def loaded_plugins() -> dict[str, PluginInfo]:
    """The plug-ins discovered so far (without triggering discovery)."""
    return dict(_loaded)


def _reset_for_tests() -> None:
    """Forget discovery state (tests only)."""
    global _attempted
    _attempted = False
    _loaded.clear()


# ---------------------------------------------------------------------------------------- helpers for plug-ins
def register_package(package: str, modules: Sequence[str], *, configs: bool = True) -> None:
    """What a plug-in's ``register`` function does: import its component modules, add its configs.

    Importing a module runs its ``@worldmodels.register`` decorators; the modules are imported in
    the order given (presets after the components they name). With ``configs``, the package's
    ``configs/`` folder (recipes, named variants) joins the Hydra search path.

    Args:
        package: the plug-in package, e.g. ``__name__`` of its ``__init__``.
        modules: its component modules relative to ``package``, e.g. ``("dynamics", "presets")``.
        configs: add ``pkg://<package>.configs`` to the config search path.

    Example:
        >>> def register() -> None:  # in worldmodels_myplugin/__init__.py  # doctest: +SKIP
        ...     register_package(__name__, ("dynamics", "sampler", "presets"))
    """
    import importlib

    for module in modules:
        importlib.import_module(f"{package}.{module}")
    if configs:
        from worldmodels.config import add_search_path

        add_search_path(f"pkg://{package}.configs")


def lazy_attributes(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<module>`` when one of ``names`` is first read.

    Keeps a plug-in's import cheap while its classes stay importable from the package:
    ``__getattr__ = lazy_attributes(__name__, {"MyDynamics": "dynamics"})``.

    Args:
        package: the package the ``__getattr__`` belongs to.
        names: attribute name -> the submodule (relative to ``package``) that defines it.
    """
    import importlib

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
