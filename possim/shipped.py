"""The scenarios shipped inside the package (the project's ``scenarios/`` folder), found by name.

One place resolves "response-lost" to its file, for the command line and the Python API
alike (``possim.scenario.load("response-lost")``): through ``importlib.resources`` on
``possim.scenarios``, so it works from any folder and never picks up a user's own
``scenarios`` package.
"""

from __future__ import annotations

import difflib
from importlib.resources import files
from pathlib import Path

from possim.i18n import N_
from possim.money.fees import Said

#: The package that carries the shipped scenario files.
PACKAGE = "possim.scenarios"


class NotOnDiskError(Exception):
    """The shipped scenarios are inside an archive, not files: name a folder instead."""


def folder() -> Path:
    """The folder of the shipped scenarios, wherever possim is installed."""
    found = files(PACKAGE)
    if not isinstance(found, Path):
        raise NotOnDiskError(f"the shipped scenarios are not on the file system ({found}); use --scenarios DIR")
    return found


def names() -> list[str]:
    """Every shipped scenario's name, sorted ([] when they are not on the file system)."""
    try:
        return sorted(p.stem for p in folder().glob("*.toml"))
    except NotOnDiskError:
        return []


def is_name(text: str) -> bool:
    """Whether ``text`` reads as a scenario's name rather than a path: no folder, no ``.toml``."""
    path = Path(text)
    return path.suffix != ".toml" and len(path.parts) == 1


def resolve(name_or_path: str | Path) -> Path:
    """A path that exists as given, else the shipped scenario of that name, else the path unchanged."""
    path = Path(name_or_path)
    if path.exists() or not is_name(str(name_or_path)):
        return path
    try:
        shipped = folder() / f"{path.name}.toml"
    except NotOnDiskError:
        return path
    return shipped if shipped.is_file() else path


def missing(name_or_path: str | Path) -> str:
    """The one line for a scenario that is neither a file nor a shipped name, with a close match when there is one."""
    text = str(name_or_path)
    if is_name(text):
        line = Said(N_("no such scenario file or shipped scenario {name}; `possim list` shows the shipped ones"),
                    name=repr(text))
        close = difflib.get_close_matches(text, names(), n=1)
    else:
        line = Said(N_("{path}: no such scenario file"), path=text)
        stem = Path(text).stem
        close = [stem] if stem in names() else difflib.get_close_matches(stem, names(), n=1)
    return Said(N_("{line} (did you mean {name}?)"), line=line, name=repr(close[0])) if close else line
