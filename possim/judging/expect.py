"""The ``[expect]`` section of a scenario: what the checker must report, per policy if needed.

Values are exact (``orphaned_debits = 1``, ``customer_loss = "25.00"``) or a comparison
string (``">= 1"``, ``"> 0"``). A sub-table named after a policy (``[expect.none]``)
applies to that policy only and overrides the flat keys; a policy without its own sub-table
is held to the flat keys only, so a new policy needs no edit of existing scenarios. Policy
names come from ``pos_sim.policies.REGISTRY``.
"""

from __future__ import annotations

import operator
import re
from decimal import Decimal
from typing import Any

from possim.judging.checker import MEASURES, OPTIONAL
from possim.pos_sim.policies import REGISTRY as POLICIES

_CMP = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(-?\d+(?:\.\d+)?)\s*$")
_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
        ">": operator.gt, "<": operator.lt, None: operator.eq}


def validate_expect(expect: dict[str, Any]) -> None:
    """Raise ``ValueError`` (one line) for an unknown measure or policy, or a value that is no comparison."""
    for key, value in expect.items():
        if key in POLICIES:
            if not isinstance(value, dict):
                raise ValueError(f"expect.{key} must be a table")
            for measure, want in value.items():
                _validate_one(f"{key}.{measure}", measure, want, "")
        else:
            _validate_one(key, key, value, " or a policy name")


def _validate_one(where: str, measure: str, value: Any, also: str) -> None:
    """A policy's sub-table holds measures only: policies do not nest."""
    if measure not in MEASURES + OPTIONAL:
        raise ValueError(f"unknown expectation {where!r} (known: {', '.join(MEASURES + OPTIONAL)}{also})")
    match = None if isinstance(value, bool) or not isinstance(value, int | str) else _CMP.match(str(value))
    if match is None:
        raise ValueError(f"expect.{where}: {value!r} is not a number or a comparison like '>= 1'")
    number = Decimal(match.group(2))
    if number < 0:
        raise ValueError(f"expect.{where}: {value!r} is negative; counts and money are never below zero")
    if measure.endswith("_loss"):
        if number != number.quantize(Decimal("0.01")):
            raise ValueError(f"expect.{where}: {value!r} is not an amount with at most two decimals")
    elif number != number.to_integral_value():
        raise ValueError(f"expect.{where}: {value!r} is not a whole number ({measure} is a count)")


def expectations_for(expect: dict[str, Any], policy: str) -> dict[str, Any]:
    """The flat keys, overridden by the policy's own sub-table when it has one."""
    flat = {k: v for k, v in expect.items() if k not in POLICIES}
    return {**flat, **expect.get(policy, {})}


def failed_expectations(expect: dict[str, Any], policy: str, summary: dict[str, Any]) -> list[str]:
    """One line per expectation the summary breaks; empty when all hold."""
    failures = []
    for key, want in expectations_for(expect, policy).items():
        got = summary.get(key, 0)  # an optional measure (checker.OPTIONAL) absent from the summary is 0
        match = _CMP.match(str(want))
        assert match is not None
        op, number = match.groups()
        if not _OPS[op](Decimal(str(got)), Decimal(number)):
            failures.append(f"{key}: expected {want}, got {got}")
    return failures
