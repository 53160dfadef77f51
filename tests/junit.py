"""A JUnit file read the way CI reads it: through a JUnit library (junitparser), not by possim's own
idea of the format, so a file that only possim's writer could read fails the tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite


@dataclass(frozen=True)
class Junit:
    """The file's one suite, its cases in order, and each case's outcome: pass, failure or skipped."""

    suite: TestSuite
    cases: list[TestCase]
    outcomes: dict[str, str]

    def named(self, outcome: str) -> set[str]:
        return {name for name, said in self.outcomes.items() if said == outcome}


def read(path: Path) -> Junit:
    """Parse ``path``; the suite's counts must agree with its cases, and a failure carries its evidence."""
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml) if isinstance(xml, JUnitXml) else [xml]
    assert len(suites) == 1, suites
    suite = suites[0]
    cases = list(suite)
    outcomes = {}
    for case in cases:
        failures = [r for r in case.result if isinstance(r, Failure)]
        for failure in failures:
            assert failure.message and failure.text  # the evidence travels with the failure
        skipped = any(isinstance(r, Skipped) for r in case.result)
        outcomes[case.name] = "failure" if failures else "skipped" if skipped else "pass"
    assert suite.tests == len(cases) == len(outcomes)
    assert suite.failures == list(outcomes.values()).count("failure")
    assert suite.skipped == list(outcomes.values()).count("skipped")
    assert suite.errors == 0
    return Junit(suite, cases, outcomes)
