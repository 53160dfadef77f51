"""The demo as a trainer runs it: a real command in a 100-column terminal, in both languages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from rich.cells import cell_len


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_demo_command_fits_100_columns(lang: str) -> None:
    env = {**os.environ, "COLUMNS": "100"}
    done = subprocess.run([sys.executable, "-m", "possim", "demo", "--pace", "0", "--lang", lang],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) > 100
    assert max(cell_len(line.rstrip()) for line in lines) <= 100
