"""Click's own usage errors in the reader's language.

Click words a wrong option or a missing argument in English and keeps no message id we could hand
to our catalogue, so a Chinese reader would see a Chinese prefix before click's English words.
Click's texts are few and fixed (the pinned click version), so each is read back into a
:class:`possim.money.fees.Said` with the same English template: the English line stays exactly click's,
and the catalogue says it in Chinese. A text none of them matches stays as click wrote it.
"""

from __future__ import annotations

import re

from possim.i18n import N_
from possim.money.fees import Said

#: click's words for what is missing and for the kinds of number it expected (catalogue entries).
KINDS = frozenset({N_("argument"), N_("option"), N_("parameter"), N_("integer"), N_("float"), N_("boolean")})

#: (pattern over click's English text, the same text as a template): tried in order, first match wins.
#: A value named ``detail`` or ``hint`` is read again, so "Invalid value for X: 'y' is not one of …"
#: is translated whole.
TEXTS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.S), t) for p, t in (
    (r"Invalid value for (?P<hint>.+?): (?P<detail>.+)", N_("Invalid value for {hint}: {detail}")),
    (r"Invalid value: (?P<detail>.+)", N_("Invalid value: {detail}")),
    (r"'(?P<value>.*)' is not one of (?P<choices>.+)\.", N_("'{value}' is not one of {choices}.")),
    (r"'(?P<value>.*)' is not a valid (?P<kind>integer|float|boolean)\.(?P<rest>.*)",
     N_("'{value}' is not a valid {kind}.{rest}")),
    (r"(?P<value>.+) is not in the range (?P<range>.+)\.", N_("{value} is not in the range {range}.")),
    (r"Missing (?P<kind>argument|option|parameter) (?P<hint>.+?)\.(?P<rest>.*)", N_("Missing {kind} {hint}.{rest}")),
    (r"No such option '(?P<name>[^']+)'\. Did you mean (?P<maybe>.+)\?",
     N_("No such option '{name}'. Did you mean {maybe}?")),
    (r"No such option '(?P<name>[^']+)'\.", N_("No such option '{name}'.")),
    (r"No such option '(?P<name>[^']+)'\. \(Did you mean one of: (?P<maybe>.+)\?\)",
     N_("No such option '{name}'. (Did you mean one of: {maybe}?)")),
    (r"No such command '(?P<name>[^']+)'\. Did you mean (?P<maybe>.+)\?",
     N_("No such command '{name}'. Did you mean {maybe}?")),
    (r"No such command '(?P<name>[^']+)'\.", N_("No such command '{name}'.")),
    (r"Got unexpected extra argument \((?P<args>.+)\)", N_("Got unexpected extra argument ({args})")),
    (r"Got unexpected extra arguments \((?P<args>.+)\)", N_("Got unexpected extra arguments ({args})")),
    (r"Option '(?P<name>[^']+)' requires an argument\.", N_("Option '{name}' requires an argument.")),
    (r"Option '(?P<name>[^']+)' does not take a value\.", N_("Option '{name}' does not take a value.")),
))
#: Values read again as click texts of their own (``rest``, click's list of choices, stays as it is).
NESTED = ("detail",)


def said(text: str) -> str:
    """``text`` (click's English) as a ``Said`` that the catalogue can translate, or as it is."""
    for pattern, template in TEXTS:
        found = pattern.fullmatch(text)
        if found is None:
            continue
        values = {k: said(v) if k in NESTED else v for k, v in found.groupdict().items()}
        got = Said(template, words=frozenset({"kind"}), **values)
        return got if got == text else text  # never change the English line
    return text
