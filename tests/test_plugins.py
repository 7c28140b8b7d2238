"""Plug-in discovery through the ``worldmodels.plugins`` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from worldmodels import plugins, registry


def _fake_distribution(root: Path, name: str, body: str, target: str | None = None) -> Path:
    """Write a module and a ``.dist-info`` declaring its entry point into ``root`` (a sys.path entry)."""
    (root / f"{name}.py").write_text(textwrap.dedent(body))
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[worldmodels.plugins]\n{name} = {target or name + ':register'}\n")
    return root


GOOD = """
    import worldmodels
    from worldmodels.interfaces import Sampler

    def register():
        @worldmodels.register("sampler", "fake-sampler")
        class FakeSampler(Sampler):
            '''A sampler from a fake distribution.'''
            def __init__(self):
                super().__init__()
            def sample(self, dynamics, tokens, action_embeddings, generator=None, use_cache=True):
                raise NotImplementedError
"""

BROKEN = """
    def register():
        raise RuntimeError("this plug-in is broken on purpose")
"""


def _run(code: str, path: Path, env_extra: dict[str, str] | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}
    env.pop(plugins.DISABLE_ENV_VAR, None)
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_plugin_is_discovered_lazily_and_builds_by_name(tmp_path: Path) -> None:
    _fake_distribution(tmp_path, "fakeplug", GOOD)
    result = _run(
        """
        import json, worldmodels
        from worldmodels import plugins, registry
        before = dict(plugins.loaded_plugins())
        sampler = worldmodels.build("fake-sampler", kind="sampler")
        entry = registry.get_entry("sampler", "fake-sampler")
        print(json.dumps({"before": len(before), "type": type(sampler).__name__,
                          "distribution": entry.distribution,
                          "listed": "fake-sampler" in worldmodels.list_components("sampler")}))
        """,
        tmp_path,
    )
    assert result == {"before": 0, "type": "FakeSampler", "distribution": "fakeplug 1.2.3", "listed": True}


def test_autoload_can_be_disabled_by_environment_variable(tmp_path: Path) -> None:
    _fake_distribution(tmp_path, "fakeplug", GOOD)
    result = _run(
        """
        import json, worldmodels
        from worldmodels.registry import UnknownComponentError
        try:
            worldmodels.build("fake-sampler", kind="sampler")
            message = ""
        except UnknownComponentError as exc:
            message = str(exc)
        print(json.dumps({"listed": "fake-sampler" in worldmodels.list_components("sampler"), "message": message}))
        """,
        tmp_path,
        {plugins.DISABLE_ENV_VAR: "1"},
    )
    assert result["listed"] is False
    assert "autoload is disabled" in result["message"]


def test_broken_plugin_is_a_warning_naming_it_and_the_rest_still_loads(tmp_path: Path) -> None:
    _fake_distribution(tmp_path, "fakeplug", GOOD)
    _fake_distribution(tmp_path, "brokenplug", BROKEN)
    result = _run(
        """
        import json, warnings, worldmodels
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = worldmodels.list_components("sampler")
        from worldmodels import plugins
        print(json.dumps({"warnings": [str(w.message) for w in caught], "names": names,
                          "failed": {k: v.loaded for k, v in plugins.loaded_plugins().items()}}))
        """,
        tmp_path,
    )
    assert "fake-sampler" in result["names"]
    assert result["failed"]["fakeplug"] is True and result["failed"]["brokenplug"] is False
    assert any("brokenplug" in w and "broken on purpose" in w for w in result["warnings"])


def test_unknown_name_lists_loaded_plugins(tmp_path: Path) -> None:
    _fake_distribution(tmp_path, "fakeplug", GOOD)
    result = _run(
        """
        import json, worldmodels
        try:
            worldmodels.build("fake-samplr", kind="sampler")
        except worldmodels.UnknownComponentError as exc:
            print(json.dumps({"message": str(exc)}))
        """,
        tmp_path,
    )
    assert "Did you mean 'fake-sampler'" in result["message"]
    assert "fakeplug (fakeplug 1.2.3)" in result["message"]


def test_discovery_failure_of_the_environment_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> list:
        raise OSError("unreadable site-packages")

    monkeypatch.setattr(plugins, "iter_entry_points", boom)
    monkeypatch.setattr(plugins, "_attempted", False)
    with pytest.warns(plugins.PluginWarning, match="could not list plug-ins"):
        plugins.load_plugins()
    assert "toy-world" in registry.list_components("model")


def test_example_plugin_template_is_discovered_when_installed() -> None:
    """The repository's plug-in template (installed by the README's set-up) is found by name."""
    from importlib import metadata

    try:
        metadata.distribution("worldmodels-example-plugin")
    except metadata.PackageNotFoundError:
        pytest.skip("examples/plugin_template is not installed in this environment (scripts/setup_env.sh installs it)")
    code = """
        import json, worldmodels
        print(json.dumps({"names": worldmodels.list_components("sampler")}))
    """
    with_autoload = _run(code, Path("."))
    without = _run(code, Path("."), {plugins.DISABLE_ENV_VAR: "1"})
    assert "example-topk" in with_autoload["names"]
    assert "example-topk" not in without["names"]
