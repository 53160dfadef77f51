"""Console rendering with rich: timelines, verdicts, side-by-side policies. Plain when piped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from possim.checker import DAMAGE, MEASURES, harmful, shown_measures
from possim.simulation import RunResult
from possim.timeline import rows


def timeline(console: Console, result: RunResult, limit: int = 400) -> None:
    table = Table(title=f"{result.scenario.name} - policy {result.policy}, seed {result.seed}",
                  show_lines=False, expand=True)
    table.add_column("t (s)", justify="right", no_wrap=True)
    table.add_column("terminal", ratio=3)
    table.add_column("network", ratio=2, style="yellow")
    table.add_column("host", ratio=3, style="cyan")
    all_rows = rows(result.trace.records)
    for t, term, net, host in all_rows[:limit]:
        style = "bold red" if "LOST" in net + term or "TIMEOUT" in term or "CRASH" in host else None
        table.add_row(f"{t:.3f}", escape(term), escape(net), escape(host), style=style)
    console.print(table)
    if len(all_rows) > limit:
        console.print(f"... {len(all_rows) - limit} more events (write them all with --trace FILE)")


def verdict(console: Console, result: RunResult, failures: Sequence[str] = ()) -> None:
    s = result.verdict.summary()
    table = Table(title="checker verdict (terminal journal vs host ledger)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in shown_measures(s):
        value = s[key]
        table.add_row(key.replace("_", " "), f"[bold red]{value}[/]" if harmful(key, value) else str(value))
    console.print(table)
    for f in result.verdict.findings[:20]:
        console.print(f"  finding: {f.finding} txn {f.txn} stan {f.key[1]} amount {f.as_dict()['amount']}")
    for line in failures:
        console.print(f"[bold red]expectation failed:[/] {line}")
    if not result.quiescent:
        console.print("[bold red]run did not reach quiescence within the horizon[/]")


def compare(console: Console, results: Sequence[RunResult]) -> None:
    table = Table(title=f"{results[0].scenario.name}: same faults, seed {results[0].seed}, each policy")
    table.add_column("measure")
    for r in results:
        table.add_column(r.policy, justify="right")
    summaries: list[dict[str, Any]] = [r.verdict.summary() for r in results]
    for key in MEASURES:
        cells = []
        for s in summaries:
            v = s[key]
            cells.append(f"[bold red]{v}[/]" if harmful(key, v) else f"[green]{v}[/]" if key in DAMAGE else str(v))
        table.add_row(key.replace("_", " "), *cells)
    console.print(table)


def coverage(console: Console, counts: Any, examples: int) -> None:
    """How often each failure situation was exercised, in domain words; zeros stand out."""
    from possim.coverage import SITUATIONS

    table = Table(title=f"fault coverage over {examples} schedules (runs that went through each situation)")
    table.add_column("situation")
    table.add_column("runs", justify="right")
    table.add_column("share", justify="right")
    for label, _ in SITUATIONS:
        n = counts.get(label, 0)
        share = f"{100 * n / examples:.1f}%" if examples else "-"
        table.add_row(label, str(n) if n else "[bold red]0[/]", share)
    console.print(table)


def reconciliation(console: Console, rec: Any, title: str) -> None:
    """The end-of-day view: batch against settlement, mismatches, fees, and what timeouts cost."""
    console.print(f"[bold]End-of-day reconciliation[/] - {title}")
    totals = Table(show_header=True)
    totals.add_column("")
    totals.add_column("count", justify="right")
    totals.add_column("total", justify="right")
    totals.add_row("terminal batch (approved sales)", str(rec.batch_count), str(rec.batch_total))
    totals.add_row("host settlement (net debits)", str(rec.settled_count), str(rec.settled_total))
    diff = rec.settled_total - rec.batch_total
    totals.add_row("difference", "", f"[bold red]{diff}[/]" if diff else str(diff))
    console.print(totals)
    if rec.mismatches:
        mm = Table(title="mismatches")
        for col in ("kind", "stan", "txn", "terminal", "host", "note"):
            mm.add_column(col)
        for m in rec.mismatches:
            mm.add_row(m.kind.replace("_", " "), m.stan, str(m.txn or "-"), str(m.terminal_amount),
                       str(m.host_amount), m.note)
        console.print(mm)
    fees = Table(title="merchant discount fees (per settled transaction, rounded half up to the cent)")
    for col in ("stan", "txn", "card", "amount", "fee", "rule"):
        fees.add_column(col, justify="right" if col in ("amount", "fee") else "left")
    for line in rec.lines[:50]:
        fees.add_row(line.stan, str(line.txn or "-"), line.instrument, str(line.amount), str(line.fee), line.rule)
    if len(rec.lines) > 50:
        fees.add_row("...", f"{len(rec.lines) - 50} more", "", "", "", "")
    fees.add_row("", "", "[bold]total[/]", str(rec.settled_total), str(rec.fees_total), "")
    console.print(fees)
    console.print(f"merchant receives {rec.merchant_net} after {rec.fees_total} in fees")
    console.print("[bold]what the timeouts cost[/]")
    console.print(f"  customer: charged {rec.customer_charged_without_sale} without a sale (orphaned debits)")
    console.print(f"  merchant: goods given away on phantom approvals {rec.merchant_goods_given_away}; "
                  f"fees paid on orphaned debits {rec.fees_on_orphaned_debits} (refunded only by a chargeback)")
    console.print("balanced" if rec.balanced else "[bold red]NOT balanced[/]")
