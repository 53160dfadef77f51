"""The README's Python examples run as written: each ```python block is executed, and every
test function it defines is called (so an example that cannot be followed fails here)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)


def test_the_readme_has_python_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_readme_python_block_runs_as_written(index: int) -> None:
    namespace: dict[str, object] = {"__name__": f"readme_block_{index}"}
    exec(compile(BLOCKS[index], f"README.md python block {index + 1}", "exec"), namespace)
    tests: list[Callable[[], object]] = [f for name, f in namespace.items()
                                         if name.startswith("test_") and callable(f)]  # type: ignore[misc]
    for test in tests:
        test()
    assert tests or "def " not in BLOCKS[index]  # a block that defines tests had them called
