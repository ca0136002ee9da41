"""The project installs as a package: no path edits anywhere, every script answers --help from any
directory with the project's Python, and no import cycle among our own modules."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scripts.ci.import_graph import cycles, project_graph
from scripts.harness import REPO_ROOT

PATH_EDIT = re.compile(r"sys\.path\.(insert|append)|PYTHONPATH[\"']?\]?\s*[=:]|prepend_sys_path")
SCANNED = ["scripts", "backend", "noxfile.py", "Makefile", "alembic.ini", "pyproject.toml", ".ci/run"]


def path_edits(root: Path) -> list[str]:
    hits: list[str] = []
    for entry in SCANNED:
        target = root / entry
        files = [target] if target.is_file() else sorted(p for p in target.rglob("*") if p.suffix in {".py", ".sh"})
        for file in files:
            if file.resolve() == Path(__file__).resolve():
                continue
            for number, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
                if PATH_EDIT.search(line) and "pop(" not in line:  # removing PYTHONPATH is fine
                    hits.append(f"{file.relative_to(root)}:{number}: {line.strip()}")
    return hits


def test_nothing_edits_the_import_path() -> None:
    assert path_edits(REPO_ROOT) == []


def test_path_edit_scan_finds_an_edit(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    planted = "sys." + "path.insert(0, '..')"  # split so this file is not itself a path edit
    (tmp_path / "scripts" / "tool.py").write_text(f"import sys\n{planted}\n")
    (tmp_path / "noxfile.py").write_text('ENV = {"PYTHONPATH": "."}\n')
    assert len(path_edits(tmp_path)) == 2


def script_files() -> list[Path]:
    return sorted(
        path
        for path in (REPO_ROOT / "scripts").rglob("*.py")
        if 'if __name__ == "__main__":' in path.read_text() and path.name != "__main__.py"
    )


def run_help(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.slow
def test_every_script_answers_help_from_any_directory(tmp_path: Path) -> None:
    scripts = script_files()
    assert len(scripts) > 10
    argvs = {str(script.relative_to(REPO_ROOT)): [sys.executable, str(script), "--help"] for script in scripts}
    argvs["-m scripts.topology"] = [sys.executable, "-m", "scripts.topology", "--help"]
    # Each answer is an interpreter start and its imports: run them side by side, a few at a time.
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = dict(zip(argvs, pool.map(lambda argv: run_help(argv, tmp_path), argvs.values()), strict=True))
    failed = {
        name: (done.returncode, done.stderr[-300:])
        for name, done in answers.items()
        if done.returncode != 0 or "usage:" not in done.stdout.lower()
    }
    assert failed == {}


def test_help_check_fails_without_the_installed_project(tmp_path: Path) -> None:
    """Control: with site-packages off (-S), the editable install is invisible and imports fail."""
    script = REPO_ROOT / "scripts" / "identity" / "assert_runtime_identity.py"
    done = run_help([sys.executable, "-S", str(script), "--help"], tmp_path)
    assert done.returncode != 0
    assert "ModuleNotFoundError" in done.stderr


def test_no_import_cycle_in_our_modules() -> None:
    graph = project_graph()
    assert "app.main" in graph and "scripts.topology" in graph
    assert cycles(graph) == []


def test_cycle_finder_sees_deferred_imports_and_skips_type_checking(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def later():\n    from pkg.c import thing\n")
    (package / "c.py").write_text("from . import a\nthing = 1\n")
    (package / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    (package / "e.py").write_text("import pkg.d\n")
    graph = project_graph({"pkg": package})
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert graph["pkg.d"] == set()
