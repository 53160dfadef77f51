"""``possim load``: many terminals in one process against possim's hosts or an ISO 8583 host under test."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from dataclasses import replace
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from possim.cli import inputs
from possim.cli import options as opt
from possim.cli.errors import ABORTED, InputError, as_input_error
from possim.cli.views import lang_option
from possim.fleets import load as lib
from possim.fleets.alerts import Thresholds
from possim.fleets.load import MAX_DURATION, MAX_TERMINALS, LoadError, LoadPlan, LoadReport, check_target, run_load
from possim.i18n import Tr
from possim.judging.checker import MONEY
from possim.protocol import transports

INTERRUPTED = "interrupted"


@click.command("load")
@click.option("--terminals", default=100, show_default=True, type=click.IntRange(1, MAX_TERMINALS),
              help="How many terminals (each its own id, STAN and journal).")
@click.option("--rate", default=50.0, show_default=True, type=opt.FiniteFloatRange(0.1, 100_000),
              help="Sales per second over the whole fleet.")
@click.option("--duration", default=10.0, show_default=True, type=opt.FiniteFloatRange(0.1, MAX_DURATION),
              help="Seconds during which sales start; the run then settles and stops by itself.")
@opt.transport("memory (in-process, no sockets), mqtt (a real broker) or tcp (loopback sockets, ISO 8583 "
               "framing); every transport runs in real time.")
@click.option("--hosts", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Host shards; each owns the terminal ids that hash to it (a topic or port per shard).")
@click.option("--connect", "connect", metavar="HOST:PORT",
              help="Drive an external ISO 8583 host under test over TCP (the verdict then comes from the journals).")
@click.option("--allow-remote", is_flag=True, help="Allow --connect and --broker to name a non-loopback host.")
@opt.policy("Recovery policy of every terminal.", default="reversal")
@opt.seed("Seed of the run's randomness: which messages --loss drops and the hosts' decisions.", default=1)
@opt.broker("MQTT broker URL (default: start a private Mosquitto).")
@opt.qos()
@click.option("--loss", default=0.0, show_default=True, type=opt.FiniteFloatRange(0, 0.5),
              help="Fault layer: lose this share of messages in each direction.")
@click.option("--timeout", default=30.0, show_default=True, type=opt.FiniteFloatRange(0.05, 300),
              help="The terminals' response timeout in seconds (reversal, query and advice timers follow it).")
@opt.profile("Terminal and host profile: iso (generic ISO 8583, length framing) or cup (China UnionPay "
             "rules and bytes: TPDU and header framing over TCP, CNY, same-STAN reversals).  [default: iso]")
@click.option("--alert-timeouts", default=Thresholds().timeouts, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Monitoring: name the terminals with at least this many response timeouts.")
@click.option("--alert-orphans", default=Thresholds().orphaned_debits, show_default=True,
              type=click.IntRange(1, 1_000_000),
              help="Monitoring: name the terminals with at least this many orphaned debits (not with --connect).")
@click.option("--progress/--no-progress", default=True,
              help="Show a live progress display on stderr (only when stderr is a terminal).")
@opt.as_json("Print the report as one JSON object.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write an HTML page with the figures, the checker's verdict, the latency histogram and latency "
                   "over time.")
@lang_option()
def load_command(terminals: int, rate: float, duration: float, transport: str, hosts: int, connect: str | None,
                 allow_remote: bool, policy: str, seed: int, broker_url: str | None, qos: int, loss: float,
                 timeout: float, profile: str | None, alert_timeouts: int, alert_orphans: int, progress: bool,
                 as_json: bool, report_path: str | None, lang: str) -> None:
    """Load a host with TERMINALS terminals at RATE sales per second for DURATION seconds, then judge.

    Prints throughput, latency percentiles (HdrHistogram), timeouts, reversals and the
    checker's verdict for the fleet. A broker or host that stays unreachable for a few
    seconds, or Ctrl-C, ends the run with the summary of what ran. Exit 0 when nothing is
    orphaned, doubled, phantom or still owed; 1 otherwise (or the broker or host was lost);
    2 for bad input; 130 on Ctrl-C.
    """
    inputs.writable(report_path)
    target = _target(connect, transport, allow_remote)
    if broker_url is not None:
        with as_input_error(LoadError):
            check_target(inputs.address(broker_url).host, allow_remote)
    plan = LoadPlan(terminals, rate, duration, transport, hosts, policy, seed, target, broker_url, qos, loss, timeout,
                    profile or "iso", Thresholds(alert_timeouts, alert_orphans))
    private = None
    if transports.get(transport).broker and broker_url is None:
        from possim.processes.broker import Broker, BrokerError

        with as_input_error(BrokerError):
            private = Broker(persistent=False).start()  # dies with the run: nothing to save
        plan = replace(plan, broker_url=private.url)
    tr = Tr(lang, plan.currency)
    try:
        report = _run(plan, progress and not as_json, tr)
    finally:
        if private:
            private.close()
    if report.lost is not None:
        click.echo(f"possim: {_why(report, tr)}", err=True)
    if report_path:
        from pathlib import Path

        from possim.fleets.load_view import render

        Path(report_path).write_text(render(report, _page_rows(report, tr), tr), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(report.as_dict(), sort_keys=True))
    else:
        _print(Console(), report, tr)
        if report_path:
            click.echo(tr("report written to {path}", path=report_path))
    sys.exit(ABORTED if report.stopped == INTERRUPTED else 0 if report.ok else 1)


def _target(connect: str | None, transport: str, allow_remote: bool) -> tuple[str, int] | None:
    if connect is None:
        return None
    if not transports.get(transport).dials:
        able = " or ".join(f"--transport {t.name}" for t in transports.REGISTRY.values() if t.dials)
        raise InputError(f"--connect drives an ISO 8583 host at its address: add {able}")
    from possim.protocol.tcp import parse_address
    from possim.protocol.transports import TransportError

    with as_input_error(TransportError):
        host, port = parse_address(connect)
    with as_input_error(LoadError):
        check_target(host, allow_remote)
    return host, port


def _run(plan: LoadPlan, live: bool, tr: Tr) -> LoadReport:
    """The run on its own loop; Ctrl-C ends it with what it measured (the report says "interrupted")."""
    from possim.protocol.transports import TransportError

    err = Console(stderr=True)
    live = live and err.is_terminal  # a pipe or a log gets the lines, never the bar
    bar = Progress(TextColumn("[bold]load[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeElapsedColumn(), console=err, transient=True, disable=not live)
    task = bar.add_task("sales", total=plan.sales, info="")
    began: list[bool] = []

    def show(meter: Any, _plan: LoadPlan, now: float) -> None:
        if not began:  # the first call: every terminal is connected and the sales are scheduled
            began.append(True)
            click.echo(tr("possim load: {n} terminals connected, sales started", n=plan.terminals), err=True)
        if not live:
            return
        rate = meter.completed / now if now > 0 else 0.0
        bar.update(task, completed=meter.completed,
                   info=f"{rate:7.1f}/s  timeouts {meter.timeouts}  reversed {meter.outcomes.get('reversed', 0)}")

    async def interruptible() -> LoadReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        try:
            return await run_load(plan, show, stop)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    with bar, as_input_error(LoadError, TransportError):
        return asyncio.run(interruptible())


def _print(con: Console, report: LoadReport, tr: Tr | None = None) -> None:
    tr = tr or Tr(currency=report.plan.currency)
    d = report.as_dict()
    con.print(tr("[bold]possim load[/]: {terminals} terminals, {rate} sales/s for {duration} s over {transport}, "
                 "{hosts} host(s), policy {policy}, profile {profile}", terminals=d["terminals"],
                 rate=f"{d['rate']:g}", duration=f"{d['duration']:g}",
                 transport=lib.transport_words(tr, d["transport"]), hosts=d["hosts"],
                 policy=tr.policy(d["policy"]), profile=tr.profile(d["profile"])))
    if report.stopped is not None:
        con.print(tr("[bold red]stopped early[/] ({why}): the figures below are what ran until then",
                     why=_why(report, tr)))
    table = Table(title=tr("throughput and latency (HdrHistogram, request to outcome)"))
    table.add_column(tr("measure"))
    table.add_column(tr("value"), justify="right")
    for name, value in _rows(d, tr):
        table.add_row(name, str(value))
    con.print(table)
    if report.completed:
        from possim.fleets.load_view import text_histogram

        lines = text_histogram(report, tr)
        con.print(lines[0], style="bold")
        for line in lines[1:]:
            con.print(line, markup=False, highlight=False)
    verdict = Table(title=_verdict_title(d, tr))
    verdict.add_column(tr("measure"))
    verdict.add_column(tr("value"), justify="right")
    for name, value in _verdict_rows(d, tr):
        verdict.add_row(name, value)
    con.print(verdict)
    con.print(_settled(report, tr))
    con.print(_alerts(d, tr))


def _verdict_title(d: dict[str, Any], tr: Tr) -> str:
    source = tr("journals") if d["verdict_from"] == "journals" else tr("journals and ledgers")
    return tr("checker verdict for the fleet (from {source})", source=source)


def _verdict_rows(d: dict[str, Any], tr: Tr) -> list[tuple[str, str]]:
    """The checker's counts and money (in the terminals' currency), named in the reader's language:
    the console's verdict table and the page's. Against an external host only the journals' counts."""
    rows = []
    for key in ("transactions", "approved", "declined", "failed", "unknown", "reversed", "orphaned_debits",
                "double_debits", "phantom_approvals", "pending_reversals", "open_holds", "escalated",
                "money_on_hold", "customer_loss", "merchant_loss", "money_at_risk"):
        if key in d:
            value = tr.money(d[key]) if key in (*MONEY, "money_at_risk") else str(d[key])
            rows.append((tr(key.replace("_", " ")), value))
    return rows


def _settled(report: LoadReport, tr: Tr) -> str:
    """The verdict in one line (rich markup): settled, or not, as ``settled`` in ``--json``."""
    return (tr("[green]settled: nothing orphaned, doubled or owed[/]") if report.ok
            else tr("[bold red]NOT settled: see the verdict[/]"))


def _alerts(d: dict[str, Any], tr: Tr) -> str:
    """Monitoring: the terminals over a threshold on one line (rich markup; every alert: ``--json``)."""
    named = d["alert_terminals"]
    if not named:
        return tr("monitoring: no terminal reached {timeouts} timeouts or {orphans} orphaned debit(s)",
                  timeouts=d["alert_thresholds"]["timeouts"], orphans=d["alert_thresholds"]["orphaned_debits"])
    shown = " ".join(named[:20]) + (" ..." if len(named) > 20 else "")
    return tr("[bold red]monitoring: {n} terminal(s) over a threshold[/]: {tids}", n=len(named), tids=shown)


def _page_rows(report: LoadReport, tr: Tr) -> list[tuple[str, object]]:
    """The page's table: the figures, then the checker's verdict and the monitoring line, as the console has them."""
    d = report.as_dict()
    return [*_rows(d, tr), (_verdict_title(d, tr), ""), *_verdict_rows(d, tr),
            (tr("verdict"), Text.from_markup(_settled(report, tr)).plain),
            (tr("monitoring alerts"), Text.from_markup(_alerts(d, tr)).plain)]


def _rows(d: dict[str, Any], tr: Tr) -> list[tuple[str, object]]:
    """The throughput and latency figures, named in the reader's language (the table and the page)."""
    lat = d["latency_ms"]
    per_host = tr("requests sent per host") if d["requests_counted"] == "sent" else tr("requests per host")
    return [(tr("sales started"), d["sales_started"]), (tr("sales completed"), d["sales_completed"]),
            (tr("throughput (sales/s)"), d["throughput"]), (tr("latency p50 (ms)"), f"{lat['p50']:.2f}"),
            (tr("latency p95 (ms)"), f"{lat['p95']:.2f}"), (tr("latency p99 (ms)"), f"{lat['p99']:.2f}"),
            (tr("latency max (ms)"), f"{lat['max']:.2f}"), (tr("timeouts"), d["timeouts"]),
            (per_host, " ".join(map(str, d["requests_per_host"]))), (tr("wall time (s)"), d["wall_seconds"])]


def _why(report: LoadReport, tr: Tr) -> str:
    """Why the run stopped early, in the reader's language."""
    if report.lost is not None:
        template, url = report.lost
        return tr(template, url=url, seconds=f"{lib.LOST_AFTER:g}")
    return tr(report.stopped or "")
