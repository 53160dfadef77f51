"""A fresh virtualenv with possim installed from a wheel runs the shipped scenarios from any folder.

The wheel is built from a copy of the sources (nothing written into the checkout) and
installed with ``pip install --no-deps`` into a new virtualenv. Its dependencies are not
downloaded: one ``.pth`` line makes the development environment's site-packages visible
*after* the new one. A ``.pth`` line only adds a folder to ``sys.path``; the ``.pth`` files
inside it (the editable install of this checkout) are not run, so ``possim`` and the
``possim.scenarios`` package can only come from the wheel. ``PYTHONPATH`` is removed and every
command runs in an empty temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

SOURCES = ("pyproject.toml", "README.md", "possim", "pos_sim", "acquirer_sim", "protocol", "scenarios")


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=180)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(the new virtualenv's bin folder, an environment without PYTHONPATH)."""
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    built = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                 "-w", base / "dist", src, cwd=base, env=env)
    assert built.returncode == 0, built.stderr
    venv = base / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base, env=env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                        cwd=base, env=env).stdout.strip())
    (purelib / "possim-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((base / "dist").glob("possim-*.whl"))
    installed = _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
                     wheel, cwd=base, env=env)
    assert installed.returncode == 0, installed.stderr
    return venv / "bin", env


def test_the_wheel_carries_the_shipped_scenarios(installed: tuple[Path, dict[str, str]]) -> None:
    wheel = next((installed[0].parent.parent / "dist").glob("possim-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"possim/scenarios/{p.relative_to(ROOT / 'scenarios')}" for p in (ROOT / "scenarios").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert shipped <= names, shipped - names
    assert "possim/scenarios/regressions/README.md" in names and "possim/data/mosquitto.conf" in names
    assert {n.split("/")[0] for n in names} == {"possim", "possim-0.1.0.dist-info"}, "only names possim owns"


def test_installed_possim_runs_shipped_scenarios_from_any_folder(installed: tuple[Path, dict[str, str]],
                                                                   tmp_path: Path) -> None:
    bin_dir, env = installed
    where = _run(bin_dir / "python", "-c", "import possim.scenarios as s, possim; print(possim.__file__, s.__file__)",
                 cwd=tmp_path, env=env)
    assert str(bin_dir.parent) in where.stdout and str(ROOT) not in where.stdout, where.stdout + where.stderr
    listed = _run(bin_dir / "possim", "list", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines()}
    assert names == {p.stem for p in (ROOT / "scenarios").glob("*.toml")}
    ran = _run(bin_dir / "possim", "run", "response-lost", "--no-timeline", cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "orphaned debits" in ran.stdout
    demo = _run(bin_dir / "possim", "demo", "--pace", "0", cwd=tmp_path, env=env)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    compared = _run(bin_dir / "possim", "compare", "response-lost", "--no-timelines", cwd=tmp_path, env=env)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert all(policy in compared.stdout for policy in ("none", "reversal", "query", "query-then-reversal"))
    assert list(tmp_path.iterdir()) == []
