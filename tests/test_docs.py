"""The documentation: Sphinx builds offline with warnings as errors, the API reference covers every
public class and function, and the code blocks of the pages run.

How the code blocks of ``docs/*.rst`` are executed (the conventions the pages follow):

* each page runs in a fresh interpreter (its registry holds what a user's would, not the test
  suite's toy components) with a fresh temporary directory as the working directory;
* ``.. code-block:: python`` runs, in page order, in one namespace per page;
* ``.. code-block:: pycon`` runs as a doctest in the same namespace: the printed outputs are
  compared (``...`` matches anything, whitespace is normalised);
* ``.. code-block:: bash`` runs in the page's directory. A block made only of ``worldmodels ...``
  commands runs them in the page's interpreter through :func:`worldmodels.cli.main` (the console
  script's entry point; it saves the interpreter start-up); any other block runs under ``bash -euo
  pipefail`` with the test environment's ``bin`` first on ``PATH``;
* a block with ``:caption: PATH`` is a file: it is written to ``PATH`` (relative to the page's
  directory) when the page reaches it, and not executed;
* ``:class: not-run`` marks a block that is shown but not executed (minutes of training, a GPU,
  a window); the text before it must say "not executed";
* ``:class: slow`` marks a self-contained block run only by the slow-marked test;
* other languages (``text``, ``yaml``, ``toml``, ``ini``) are outputs or configuration, not run.

``write_plugin.rst`` has its own test: it writes the page's files into an empty folder,
pip-installs the plug-in into this environment, runs the page's commands and code, and
uninstalls it.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomllib
import torch

from worldmodels.plugins import canonical_distribution_name

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PLUGIN_PAGE = "write_plugin"
RUNNABLE = {"python", "pycon", "bash"}
PAGE_NOT_EXECUTED = re.compile(r"none of the (commands|code blocks) on this page (is|are) executed")
SHELL_SYNTAX = re.compile(r"[|&;<>$`*?()]")


# ---------------------------------------------------------------------------------------- parsing
@dataclass
class Block:
    """One ``.. code-block::`` of a page."""

    page: Path
    line: int  # 1-based line of the directive
    language: str
    options: dict[str, str]
    text: str
    before: str  # the page's text between the previous block and this one
    content_line: int = 0  # 1-based line of the first line of ``text``
    classes: set[str] = field(default_factory=set)

    @property
    def caption(self) -> str | None:
        return self.options.get("caption")

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def code_blocks(page: Path) -> list[Block]:
    """Every ``.. code-block::`` of ``page`` with its options and dedented text."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    previous_end = 0
    i = 0
    directive = re.compile(r"^(\s*)\.\. code-block::\s*(\S*)\s*$")
    while i < len(lines):
        match = directive.match(lines[i])
        if not match:
            i += 1
            continue
        indent, language = len(match.group(1)), match.group(2) or "none"
        start = i
        i += 1
        options: dict[str, str] = {}
        while i < len(lines) and (opt := re.match(r"^\s+:([\w-]+):\s*(.*)$", lines[i])):
            options[opt.group(1)] = opt.group(2).strip()
            i += 1
        body: list[str] = []
        content_line = i + 2
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        while body and not body[0].strip():
            body.pop(0)
        text = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        blocks.append(Block(page, start + 1, language, options, text, "\n".join(lines[previous_end:start]),
                            content_line=content_line, classes=set(options.get("class", "").split())))
        previous_end = i
    return blocks


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.rst"))


def runnable_pages(slow: bool = False) -> list[str]:
    out = []
    for page in pages():
        if page.stem == PLUGIN_PAGE:
            continue
        blocks = [b for b in code_blocks(page) if b.language in RUNNABLE and "not-run" not in b.classes]
        if any(("slow" in b.classes) == slow for b in blocks):
            out.append(page.stem)
    return out


# ---------------------------------------------------------------------------------------- running
def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
            "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYTHONDONTWRITEBYTECODE": "1"}


def _commands(text: str) -> list[str]:
    """Shell text -> logical commands (continuation lines joined, comments and blank lines dropped)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def run_bash(block: Block, cwd: Path, timeout: int = 300) -> str:
    commands = _commands(block.text)
    if commands and all(c.startswith("worldmodels ") and not SHELL_SYNTAX.search(c) for c in commands):
        from worldmodels.cli import main

        for command in commands:
            status = main(shlex.split(command)[1:])
            assert status == 0, f"{block.where}: `{command}` exited with {status}"
        return ""
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=cwd, env=_env(),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{block.where}: bash block failed:\n{block.text}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def run_python(block: Block, namespace: dict[str, Any]) -> None:
    padded = "\n" * (block.content_line - 1) + block.text  # tracebacks point at the page's lines
    exec(compile(padded, str(block.page), "exec"), namespace)  # noqa: S102 - the documentation's own code


def run_pycon(block: Block, namespace: dict[str, Any]) -> None:
    test = doctest.DocTestParser().get_doctest(block.text, namespace, block.where, str(block.page),
                                               block.content_line - 1)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)  # DocTest works on a copy of the namespace
    assert result.failed == 0, f"{block.where}: doctest failed:\n{''.join(report)}"


def write_file(block: Block, cwd: Path) -> Path:
    path = cwd / block.caption  # type: ignore[operator]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.text)
    return path


def run_page(page: Path, cwd: Path, *, slow: bool) -> int:
    """Execute a page's blocks (the slow ones, or all the others) in ``cwd``; returns how many ran."""
    os.chdir(cwd)
    torch.set_num_threads(1)
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    ran = 0
    for block in code_blocks(page):
        if block.caption:
            if not slow:
                write_file(block, cwd)
            continue
        if block.language not in RUNNABLE or "not-run" in block.classes or ("slow" in block.classes) != slow:
            continue
        if block.language == "bash":
            run_bash(block, cwd)
        elif block.language == "pycon":
            run_pycon(block, namespace)
        else:
            run_python(block, namespace)
        ran += 1
    return ran


def run_page_in_subprocess(page: str, cwd: Path, *, slow: bool) -> None:
    """Run a page in a fresh interpreter: the registry holds what a user's would, not the test suite's toys."""
    command = [sys.executable, __file__, page, str(cwd), *(["--slow"] if slow else [])]
    result = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"docs/{page}.rst failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    assert "blocks ran" in result.stdout, result.stdout


# ---------------------------------------------------------------------------------------- tests
def _inventory_names(path: Path) -> set[str]:
    """Object names in a Sphinx ``objects.inv`` (format 2: four header lines, then zlib)."""
    data = path.read_bytes()
    body = data.split(b"\n", 4)[4]
    return {line.split(" ", 1)[0] for line in zlib.decompress(body).decode().splitlines() if line}


def _public_objects() -> list[str]:
    """Every public class and function defined in a public module of the core and the Genie plug-in."""
    import importlib
    import inspect
    import pkgutil

    names = []
    for package_name in ("worldmodels", "worldmodels_genie"):
        package = importlib.import_module(package_name)
        modules = [package] + [importlib.import_module(m.name)
                               for m in pkgutil.walk_packages(package.__path__, f"{package_name}.")
                               if not any(part.startswith("_") for part in m.name.split("."))]
        for module in modules:
            for name, obj in vars(module).items():
                if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                    continue
                if getattr(obj, "__module__", None) == module.__name__:
                    names.append(f"{module.__name__}.{name}")
    return names


def test_sphinx_build_has_no_warnings_and_documents_every_public_name(tmp_path: Path) -> None:
    pytest.importorskip("sphinx")
    pytest.importorskip("furo")
    generated = DOCS / "api" / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600, env=_env(),
    )
    assert out.returncode == 0, f"sphinx-build -W failed:\n{out.stdout}\n{out.stderr}"
    documented = _inventory_names(tmp_path / "html" / "objects.inv")
    missing = [name for name in _public_objects() if name not in documented]
    assert not missing, f"public names missing from the API reference: {missing}"
    for page in pages():
        assert (tmp_path / "html" / f"{page.stem}.html").is_file(), f"{page.name} was not built"


def test_every_page_follows_the_code_block_conventions() -> None:
    for page in pages():
        blocks = code_blocks(page)
        preamble = blocks[0].before if blocks else ""
        for block in blocks:
            if "not-run" in block.classes:
                said_once = PAGE_NOT_EXECUTED.search(" ".join(preamble.lower().split()))
                assert "not executed" in " ".join(block.before.lower().split()) or said_once, (
                    f"{block.where}: say in the text before a block that it is not executed, and why (or, "
                    "before a page's first block, that none of the commands on the page is executed)")
            if block.caption:
                assert not block.caption.startswith("/") and ".." not in block.caption, block.where
            assert block.text.strip(), f"{block.where}: empty code block"


@pytest.mark.parametrize("page", runnable_pages())
def test_page_code_blocks_run(page: str, tmp_path: Path) -> None:
    run_page_in_subprocess(page, tmp_path, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", runnable_pages(slow=True))
def test_page_slow_code_blocks_run(page: str, tmp_path: Path) -> None:
    run_page_in_subprocess(page, tmp_path, slow=True)


def test_readme_quick_start_runs(tmp_path: Path) -> None:
    """The README's Python quick start, as a user would paste it, in a fresh interpreter."""
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README.md has no ```python block"
    script = tmp_path / "quick_start.py"
    script.write_text("\n".join(blocks))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"README.md's quick start failed:\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "my-world" / "model.safetensors").is_file()


def _pip(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300,
                          env=_env(), cwd=cwd)


def test_write_a_plugin_page_from_an_empty_folder(tmp_path: Path) -> None:
    """Follow "Write a plug-in": write its files, install, list, run its tests and code, uninstall."""
    blocks = code_blocks(DOCS / f"{PLUGIN_PAGE}.rst")
    files = [b for b in blocks if b.caption]
    pyproject = next(b for b in files if b.caption.endswith("pyproject.toml"))
    project = tomllib.loads(pyproject.text)["project"]
    distribution, plugin_dir = project["name"], Path(pyproject.caption).parent
    component = re.search(r'register\("sampler", "([^"]+)"\)', "".join(b.text for b in files)).group(1)
    assert list(tmp_path.iterdir()) == []  # an empty folder
    for block in files:
        write_file(block, tmp_path)

    shell = [b for b in blocks if b.language == "bash" and "not-run" not in b.classes]
    python = [b for b in blocks if b.language == "python" and not b.caption]
    assert shell and python and any("pip install" in b.text for b in shell)
    _pip("uninstall", "-y", distribution)  # a leftover of an interrupted run
    outputs: list[str] = []
    try:
        for block in shell:
            for command in _commands(block.text):
                words = shlex.split(command)
                if words[:2] == ["pip", "install"]:  # into this environment, offline, without a build env
                    result = _pip("install", "--no-deps", "--no-build-isolation", *words[2:], cwd=tmp_path)
                else:
                    result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=tmp_path,
                                            env=_env(), capture_output=True, text=True, timeout=300)
                assert result.returncode == 0, f"`{command}` failed:\n{result.stdout}\n{result.stderr}"
                outputs.append(result.stdout)
        listing = next(out for out, b in zip(outputs, [c for b in shell for c in _commands(b.text)])
                       if b.startswith("worldmodels list"))
        assert re.search(rf"^\s+{re.escape(component)}\s+\[{canonical_distribution_name(distribution)} ", listing, re.M), listing
        script = tmp_path / "use_it.py"
        script.write_text("\n".join(b.text for b in python) + textwrap.dedent(f"""
            built = worldmodels.build("genie-tiny", sampler={component!r})
            print("BUILT", type(built.sampler).__module__)
        """))
        result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"the page's Python failed:\n{result.stdout}\n{result.stderr}"
        assert f"BUILT {plugin_dir.name.replace('-', '_')}.sampler" in result.stdout, result.stdout
    finally:
        removed = _pip("uninstall", "-y", distribution)
    assert removed.returncode == 0, removed.stderr


if __name__ == "__main__":  # python tests/test_docs.py PAGE DIR [--slow]: run one page's blocks in DIR
    _page, _cwd = sys.argv[1], Path(sys.argv[2])
    _ran = run_page(DOCS / f"{_page}.rst", _cwd, slow="--slow" in sys.argv[3:])
    print(f"docs/{_page}.rst: {_ran} blocks ran")
    sys.exit(0 if _ran else 1)
