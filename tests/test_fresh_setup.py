"""A new machine gets the versions the suite was run with: a new virtualenv, no pip cache, constraints.txt.

Why: a range such as ``babel>=2.14`` resolves to whatever is newest on the day, so a fresh clone
could go red while every developer's old virtualenv stays green. ``make`` installs with
``-c constraints.txt``; this test does the same from a copy of the sources into a new virtualenv
with ``PIP_NO_CACHE_DIR=1`` (everything downloaded again), checks that every installed
distribution is the pinned one, and runs the suite's fast part there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SOURCES = ("pyproject.toml", "README.md", "constraints.txt", "possim", "pos_sim", "acquirer_sim", "protocol",
           "scenarios", "tests")
#: The fast part: the codec against pyiso8583, the shape of the code, the catalogues.
FAST = ("tests/protocol/test_codec.py", "tests/test_architecture.py",
        "tests/views/test_i18n.py::test_compiled_catalogues_match_their_po_sources")


def _pins() -> dict[str, str]:
    pins = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[_canonical(name)] = version
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900)


@pytest.mark.timeout(1200)
def test_a_new_virtualenv_with_no_cache_installs_the_pins_and_runs_the_fast_suite(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_NO_CACHE_DIR"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env).returncode == 0
    python = venv / "bin" / "python"
    for step in (("pip", "setuptools"), ("--no-build-isolation", ".[dev]")):
        done = _run(python, "-m", "pip", "install", "-q", "-c", "constraints.txt", *step, cwd=src, env=env)
        assert done.returncode == 0, done.stderr[-3000:]

    frozen = _run(python, "-m", "pip", "freeze", "--all", "--exclude", "possim", cwd=src, env=env)
    installed = dict(line.split("==") for line in frozen.stdout.split() if "==" in line)
    pins = _pins()
    unpinned = {n for n in installed if _canonical(n) not in pins}
    assert not unpinned, f"installed without a pin in constraints.txt: {sorted(unpinned)}"
    differ = {n: v for n, v in installed.items() if pins[_canonical(n)] != v}
    assert not differ, differ

    tested = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FAST, cwd=src, env=env)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert " passed" in tested.stdout.splitlines()[-1]
