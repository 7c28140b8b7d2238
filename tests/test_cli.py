"""The ``worldmodels`` command line: list and show."""

from __future__ import annotations

import json
import subprocess
import sys

from worldmodels.cli import main


def test_list_shows_every_kind_with_distribution(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in ("tokenizer:", "action_model:", "dynamics:", "sampler:", "model:"):
        assert kind in out
    assert "toy-world" in out and "[toy_components]" in out


def test_list_filters_by_kind_and_pattern(capsys) -> None:
    assert main(["list", "--kind", "model", "toy-*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert list(rows) == ["model"] and [r["name"] for r in rows["model"]] == ["toy-continuous-world", "toy-world"]


def test_show_prints_config_and_parameter_counts(capsys) -> None:
    assert main(["show", "toy-world", "dynamics.dim=4"]) == 0
    out = capsys.readouterr().out
    config = json.loads(out[: out.index("parameters:")])
    assert config["dynamics"]["dim"] == 4
    assert "total" in out and "dynamics" in out


def test_show_swaps_components_through_hydra(capsys) -> None:
    assert main(["show", "toy-world", "sampler=toy-argmax"]) == 0
    assert '"name": "toy-argmax"' in capsys.readouterr().out


def test_show_unknown_name_suggests_and_fails_cleanly(capsys) -> None:
    assert main(["show", "toy-wrld"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'toy-world'" in err and "Traceback" not in err


def test_console_script_runs_as_a_module() -> None:
    out = subprocess.run([sys.executable, "-m", "worldmodels", "list", "--kind", "sampler"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "sampler:" in out.stdout
