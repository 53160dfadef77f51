"""A fresh virtualenv with possim installed from a wheel runs the shipped scenarios from any folder.

The wheel is built from a copy of the sources (nothing written into the checkout) and
installed with ``pip install --no-deps`` into a new virtualenv. Its dependencies are not
downloaded: one ``.pth`` line makes the development environment's site-packages visible
*after* the new one. A ``.pth`` line only adds a folder to ``sys.path``; the ``.pth`` files
inside it (the editable install of this checkout) are not run, so ``possim`` and the
``possim.scenarios`` package can only come from the wheel. ``PYTHONPATH`` is removed and every
command runs in a temporary folder: an empty one, or a user's project whose own ``protocol`` and
``scenarios`` packages must not collide with possim's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from possim.pos_sim.policies import REGISTRY as POLICY_REGISTRY
from tests.conftest import ROOT

SOURCES = ("pyproject.toml", "README.md", "possim", "pos_sim", "acquirer_sim", "protocol", "scenarios")
#: Lines of pip's and setuptools' output that mention a warning but come from this machine, not from
#: possim's configuration: bytecode compiling switched off by PYTHONDONTWRITEBYTECODE, and pip's own
#: index settings ("Location 'file:///opt/...' is ignored").
NOT_OURS = ("byte-compiling is disabled", "Location '")


@dataclass(frozen=True)
class Installed:
    bin: Path
    env: dict[str, str]
    wheel: Path
    #: everything pip printed while building the wheel (verbose: setuptools' own lines) and installing it
    output: str


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=180)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """possim built into a wheel from a copy of the sources and installed into a new virtualenv (once: slow)."""
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    built = _run(sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "--no-index",
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
    done = _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel,
                cwd=base, env=env)
    assert done.returncode == 0, done.stderr
    return Installed(venv / "bin", env, wheel, "\n".join((built.stdout, built.stderr, done.stdout, done.stderr)))


def test_the_wheel_carries_the_shipped_scenarios_and_translations(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    shipped = {f"possim/scenarios/{p.relative_to(ROOT / 'scenarios')}" for p in (ROOT / "scenarios").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert shipped <= names, shipped - names
    assert {"possim/scenarios/regressions/README.md", "possim/data/mosquitto.conf", "possim/locale/zh/scenarios.toml",
            "possim/locale/zh/LC_MESSAGES/possim.mo", "possim/data/certify/iso.toml",
            "possim/data/certify/cup.toml", "possim/data/lab/lab.js", "possim/data/lab/lab.css"} <= names
    # only possim's own name at the top: a user's protocol/ or scenarios/ package never collides
    assert {n.split("/")[0] for n in names} == {"possim", "possim-0.1.0.dist-info"}


def test_building_and_installing_warn_of_nothing_in_possims_configuration(installed: Installed) -> None:
    warnings = [line for line in installed.output.splitlines()
                if re.search(r"warn|deprecat", line, re.IGNORECASE) and not any(n in line for n in NOT_OURS)]
    assert warnings == []


def test_installed_possim_runs_shipped_scenarios_from_any_folder(installed: Installed, tmp_path: Path) -> None:
    bin_dir, env = installed.bin, installed.env
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
    assert all(policy in compared.stdout for policy in POLICY_REGISTRY.names())
    assert list(tmp_path.iterdir()) == []


def test_installed_possim_speaks_chinese(installed: Installed, tmp_path: Path) -> None:
    """The Chinese scenario titles are package data: an installed possim shows them."""
    with (ROOT / "possim" / "locale" / "zh" / "scenarios.toml").open("rb") as f:
        title = tomllib.load(f)["response-lost"]["title"]
    ran = _run(installed.bin / "possim", "run", "response-lost", "--lang", "zh", "--no-timeline",
               cwd=tmp_path, env=installed.env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert title in ran.stdout and "单边账" in ran.stdout


def test_installed_lab_serves_its_page_script_and_style_from_the_package(installed: Installed,
                                                                         tmp_path: Path) -> None:
    """``possim lab`` fetches nothing from a network: its script and style are package data."""
    import urllib.request

    from tests.views.test_lab import READY, read_line

    proc = subprocess.Popen([str(installed.bin / "possim"), "lab", "--port", "0", "--no-browser"], cwd=tmp_path,
                            env=installed.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        found = READY.match(read_line(proc))
        assert found, "no readiness line"
        for path, wanted in (("", "/static/lab.js"), ("static/lab.js", "addEventListener"),
                             ("static/lab.css", "presentation")):
            with urllib.request.urlopen(found.group(1) + path, timeout=60) as answer:
                assert answer.status == 200 and wanted in answer.read().decode()
    finally:
        proc.terminate()
        assert proc.wait(60) is not None
        for pipe in (proc.stdout, proc.stderr):
            assert pipe is not None
            pipe.close()


#: A user's project with packages named as possim's own folders are in a checkout: possim must not import them.
USER_CONFTEST = """\
import protocol
import scenarios

assert protocol.MINE and scenarios.MINE
"""
USER_TEST = """\
import protocol

from possim.scenario import load
from possim.simulation import simulate


def test_my_protocol_and_possims_scenario_side_by_side():
    assert protocol.MINE
    result = simulate(load("response-lost"), "reversal")
    assert result.verdict.counts["orphaned_debits"] == 0
    assert simulate(load("response-lost"), "none").verdict.counts["orphaned_debits"] == 1
"""


def test_a_users_own_protocol_and_scenarios_packages_do_not_collide(installed: Installed, tmp_path: Path) -> None:
    for package in ("protocol", "scenarios"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("MINE = True\n")  # no latency.py, no messages.py
    (tmp_path / "scenarios" / "mine.toml").write_text("title = 'mine'\n")
    (tmp_path / "conftest.py").write_text(USER_CONFTEST)
    (tmp_path / "test_mine.py").write_text(USER_TEST)
    tested = _run(installed.bin / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_mine.py",
                  cwd=tmp_path, env=installed.env)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout
    listed = _run(installed.bin / "python", "-m", "possim", "list", cwd=tmp_path, env=installed.env)
    assert listed.returncode == 0, listed.stderr
    assert {line.split()[0] for line in listed.stdout.splitlines()} == {p.stem for p in
                                                                        (ROOT / "scenarios").glob("*.toml")}


#: The examples of docs/pytest.md, as a QA engineer copies them into an empty folder: a property test of
#: their own client against possim's plugin fixture, and possim's strategies against a terminal that
#: never reverses.
GUIDE = ROOT / "docs" / "pytest.md"


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)


def _running(marker: str) -> list[int]:
    """The pids of processes whose command line names ``marker`` (a folder only this test's processes use)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes()
        except OSError:  # not a process, or one that ended meanwhile
            continue
        if proc.name.isdigit() and marker.encode() in argv:
            found.append(int(proc.name))
    return found


def test_a_users_suite_gets_possims_fixtures_and_strategies_from_the_installed_plugin(
        installed: Installed, tmp_path: Path) -> None:
    """Plain ``python -m pytest`` in an empty folder runs docs/pytest.md's examples as written: the entry
    point brings the fixtures, the acquirer is a real process that ends with its test, and the failing
    schedule prints as a scenario file that ``possim run`` replays to the same loss."""
    client, schedules = _python_blocks(GUIDE)[:2]
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_my_client.py").write_text(client)
    (suite / "test_my_schedules.py").write_text(schedules)
    basetemp = tmp_path / "basetemp"
    tested = _run(installed.bin / "python", "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=",
                  "--strict-markers", "--hypothesis-seed=0", f"--basetemp={basetemp}", cwd=suite, env=installed.env)
    out = tested.stdout + tested.stderr
    assert tested.returncode == 1, out
    assert "test_my_client.py ." in out and "test_my_schedules.py F" in out, out
    assert "1 failed, 1 passed" in out, out
    assert "_schedule(" not in out, out
    found = _printed_scenario(out)
    assert "[terminal]" in found and ("[[transactions]]" in found or "transactions = [" in found), out
    saved = tmp_path / "found.toml"
    saved.write_text(found)
    replayed = _run(installed.bin / "possim", "run", saved, "--policy", "none", "--json", cwd=suite, env=installed.env)
    assert json.loads(replayed.stdout)["orphaned_debits"] >= 1, replayed.stdout + replayed.stderr
    ledgers = list(basetemp.rglob("ledger.db"))  # the acquirer the client test talked to, and its bookings
    assert len(ledgers) == 1
    with closing(sqlite3.connect(ledgers[0])) as conn:
        assert conn.execute("SELECT COUNT(*) FROM entries WHERE kind = 'debit'").fetchone()[0] >= 1
    assert _running(str(basetemp)) == []  # stopped and reaped by the fixture, not left behind by pytest


def _printed_scenario(pytest_output: str) -> str:
    """The TOML of the shrunk schedule as pytest showed it (on its ``E`` lines): from the line Hypothesis's
    example starts with to the end of the example."""
    lines = [line[8:] if line.startswith("E       ") else line for line in pytest_output.splitlines()]
    # the last one: pytest's traceback also shows the argument, cut short, before the assertion's lines
    start = max(n for n, line in enumerate(lines) if line.startswith("# a possim scenario"))
    end = next(n for n in range(start, len(lines)) if lines[n].strip() in (",", ")"))
    return "\n".join(lines[start:end]) + "\n"
