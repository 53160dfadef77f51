"""Shipped scenarios by name, the same for the Python API and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from possim import shipped
from possim.cli import main
from possim.scenario import ScenarioError, load
from tests.conftest import SCENARIOS


def test_the_python_api_loads_a_shipped_scenario_by_name(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sc = load("response-lost")
    assert sc.name == "response-lost"
    assert sc.raw() == load(SCENARIOS / "response-lost.toml").raw()


def test_a_file_in_the_folder_wins_over_a_shipped_name(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = (SCENARIOS / "response-lost.toml").read_text().replace("seed = ", "seed = 4", 1)
    (tmp_path / "response-lost").write_text(text)
    assert load("response-lost").raw()["seed"] != load(SCENARIOS / "response-lost.toml").raw()["seed"]


def test_every_shipped_name_loads() -> None:
    assert shipped.names() == sorted(p.stem for p in SCENARIOS.glob("*.toml"))
    assert all(load(name).name == name for name in shipped.names())


def test_a_missing_name_says_where_to_look_and_suggests_a_close_one() -> None:
    with pytest.raises(ScenarioError) as err:
        load("respons-lost")
    assert str(err.value) == ("no such scenario file or shipped scenario 'respons-lost'; `possim list` shows the "
                              "shipped ones (did you mean 'response-lost'?)")
    with pytest.raises(ScenarioError) as err:
        load("zzzz")
    assert "(did you mean" not in str(err.value) and "`possim list`" in str(err.value)


def test_an_old_checkout_path_points_to_the_shipped_name(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError) as err:
        load("scenarios/response-lost.toml")
    assert str(err.value) == "scenarios/response-lost.toml: no such scenario file (did you mean 'response-lost'?)"


def test_the_command_line_gives_the_same_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["run", "respons-lost"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == ("possim: error: no such scenario file or shipped scenario 'respons-lost'; "
                                       "`possim list` shows the shipped ones (did you mean 'response-lost'?)\n")
