"""Export a run as a Mermaid ``sequenceDiagram`` for docs and wikis.

Arrows appear in the order they landed; a lost message ends in a cross (``-x``) with a note
saying why, also when it reached a host that was down; timeouts, ledger changes and what the
cashier saw are notes on their lifeline. A run with wallet payments gets a wallet participant
(``W``): wallet frames run between it and the terminal, its charges and refunds are its notes.
Worded in the reader's language.
"""

from __future__ import annotations

from collections.abc import Iterable

from possim.i18n import Tr
from possim.protocol.events import Stamped
from possim.views.msc import HOST, TERMINAL, WALLET, Arrow, build

_WHO = {TERMINAL: "T", HOST: "H", WALLET: "W"}


def to_mermaid(records: Iterable[Stamped], title: str, tr: Tr | None = None) -> str:
    tr = tr or Tr("en")
    seq = build(records, tr)
    lines = ["sequenceDiagram", f"    title {_clean(title)}", f"    participant T as {_clean(tr('Terminal'))}",
             f"    participant H as {_clean(tr('Acquirer host'))}"]
    if seq.has_wallet:
        lines.append(f"    participant W as {_clean(tr('Wallet'))}")
    by_end: dict[int, list[Arrow]] = {}
    for arrow in seq.arrows:
        by_end.setdefault(arrow.end_step if arrow.end_step is not None else 10**9, []).append(arrow)
    for step in seq.steps:
        lines.extend(_arrow(arrow, tr) for arrow in by_end.get(step.index, []))
        if step.lane == TERMINAL and step.style in ("timeout", "good", "bad"):
            lines.append(f"    Note over T: t={step.t:g}s {_clean(step.text)}")
        elif step.lane in (HOST, WALLET) and step.style in ("ledger", "bad"):
            lines.append(f"    Note over {_WHO[step.lane]}: t={step.t:g}s {_clean(step.text)}")
    lines.extend(_arrow(arrow, tr) for arrow in by_end.get(10**9, []))
    return "\n".join(lines) + "\n"


def _arrow(arrow: Arrow, tr: Tr) -> str:
    frm, to = _WHO[arrow.frm], _WHO[arrow.to]
    if arrow.lost:
        why = tr(arrow.lost.replace("_", " "))
        return f"    {frm}-x{to}: {_clean(tr('{label} LOST ({why})', label=arrow.label, why=why))}"
    tag = tr(" (late)") if arrow.late else tr(" (duplicate)") if arrow.duplicate else ""
    style = "-->>" if arrow.kind != "financial" else "->>"
    return f"    {frm}{style}{to}: {_clean(arrow.label)}{tag}"


def _clean(text: str) -> str:
    """Mermaid treats ';' and '#' specially in message text."""
    return text.replace(";", ",").replace("#", "no. ").replace("\n", " ")
