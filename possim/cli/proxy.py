"""``possim proxy``: a fault proxy by business meaning between someone's own terminal and host
(``possim.processes.proxy``), and how ``possim replay`` shows the trace it records."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

from possim.cli import inputs
from possim.cli import options as opt
from possim.cli.errors import InputError, as_input_error
from possim.cli.options import LiveChoice
from possim.i18n import N_, Tr
from possim.processes.proxy import Proxy, ProxyError, WireVerdict, address, load_faults, wire_verdict
from possim.protocol import events as ev
from possim.protocol.profiles import REGISTRY as PROFILES
from possim.running.trace import Trace

#: The verdict's measures, in the order printed, with their names for people.
MEASURES = {"messages": N_("messages"), "answers_lost": N_("answers lost"), "reversals": N_("reversals sent"),
            "sales_at_risk": N_("sales at risk"), "malformed": N_("undecodable frames")}
#: The longest --duration: a day (a proxy left running by mistake ends).
MAX_DURATION = 24 * 3600.0


@click.command("proxy")
@click.option("--listen", "listen_url", required=True, metavar="tcp://HOST:PORT",
              help="Where the terminal connects (port 0: any free port, printed in the readiness line).")
@click.option("--upstream", "upstream_url", required=True, metavar="tcp://HOST:PORT",
              help="The host the proxy forwards to; each terminal connection gets its own.")
@click.option("--faults", "faults_path", required=True, type=click.Path(dir_okay=False),
              help="TOML with a scenario's [[faults]], [[partitions]] and [network.to_host]/[network.to_terminal].")
@click.option("--profile", type=LiveChoice(PROFILES.names), default="iso", show_default=True,
              help="Framing and codec: iso (2-byte length, possim's ISO 8583) or cup (length, TPDU, header).")
@opt.trace("Write the proxy's JSON-lines trace here on exit (read by possim replay).")
@opt.seed("The fault layer's RNG seed (random loss, latency, duplication, reordering).", default=1)
@click.option("--duration", type=opt.FiniteFloatRange(0, MAX_DURATION, min_open=True),
              help="Stop after this many seconds (default: at SIGINT/SIGTERM).")
@click.option("--max-messages", type=click.IntRange(1), help="Stop after this many messages (both directions).")
@click.option("--allow-remote", is_flag=True,
              help="Allow --listen and --upstream on addresses other than loopback.")
@opt.as_json("Print the verdict from the wire as one JSON object.")
@opt.lang()
def proxy_command(listen_url: str, upstream_url: str, faults_path: str, profile: str, trace_path: str | None,
                  seed: int, duration: float | None, max_messages: int | None, allow_remote: bool, as_json: bool,
                  lang: str) -> None:
    """Forward ISO 8583 between your terminal and your host, losing, delaying or duplicating messages by
    MTI and direction; on exit, the verdict from the wire: answers lost, reversals, sales at risk.

    Exit 0, or 1 when a sale is at risk (answered by the host, answer never delivered, never reversed).
    """
    with as_input_error(ProxyError):
        listen = address(listen_url, "--listen", allow_remote)
        upstream = address(upstream_url, "--upstream", allow_remote)
        plan, raw = load_faults(faults_path)
    inputs.writable(trace_path)
    from possim.cli.processes import live_logger

    log = live_logger("proxy")

    async def serve() -> tuple[WireVerdict, Trace]:
        proxy = Proxy(upstream, plan, seed, profile, log, max_messages)
        proxy.trace.sink = log
        try:
            port = await proxy.start(*listen, raw)
        except OSError as exc:
            raise InputError(f"--listen {listen_url}: cannot listen: {exc.strerror or exc}") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"possim proxy: listening on tcp://{listen[0]}:{port}, upstream tcp://{upstream[0]}:{upstream[1]}"
                   f", profile {profile}", err=True)
        ends: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait()), asyncio.create_task(proxy.done.wait())]
        if duration is not None:
            ends.append(asyncio.create_task(asyncio.sleep(duration)))
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in ends:
                task.cancel()
            await proxy.stop()
        return proxy.finish(), proxy.trace

    verdict, trace = asyncio.run(serve())
    if trace_path:
        trace.write(trace_path)
    print_verdict(verdict.summary(), as_json, Tr(lang))
    sys.exit(1 if verdict.sales_at_risk else 0)


def print_verdict(summary: dict[str, Any], as_json: bool, tr: Tr) -> None:
    """The verdict from the wire: one JSON object, or one line per measure and one per sale at risk."""
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    click.echo(tr("verdict from the wire"))
    for key, name in MEASURES.items():
        click.echo(f"{tr(name):>20}: {summary[key]}")
    for sale in summary["at_risk"]:
        click.echo("  " + tr("sale at risk: terminal {tid} stan {stan}", tid=sale["tid"], stan=sale["stan"]))


def replay_proxy_trace(records: list[ev.Stamped], path: str, as_json: bool, lang: str,
                       report_path: str | None) -> int:
    """``possim replay`` of a proxy trace: its timeline and the verdict judged again from its events.

    Exit 0 when the verdict read again is the recorded one. With ``report_path``, the HTML chart too.
    """
    from possim.cli.screen import console
    from possim.views import console as show

    tr = Tr(lang)
    header = next(s.event for s in records if isinstance(s.event, ev.ProxyRun))
    assert isinstance(header, ev.ProxyRun)
    summary = wire_verdict(records).summary()
    finished = next((s.event for s in records if isinstance(s.event, ev.RunFinished)), None)
    recorded = finished.summary if isinstance(finished, ev.RunFinished) else None
    same = recorded is not None and all(recorded.get(k) == v for k, v in summary.items())
    title = tr("proxy {listen} -> {upstream} ({profile}), seed {seed}", listen=header.listen,
               upstream=header.upstream, profile=tr.profile(header.profile), seed=header.seed)
    if report_path:
        from possim.views.html_report import render_trace

        rows = [(tr(name), str(summary[key])) for key, name in MEASURES.items()]
        Path(report_path).write_text(render_trace(records, title, rows, tr.lang), encoding="utf-8")
        click.echo(tr("report written to {path}", path=report_path), err=True)
    if as_json:
        click.echo(json.dumps({**summary, "matches_recording": same}, sort_keys=True))
    else:
        show.trace_table(console(), records, title, tr=tr)
        print_verdict(summary, False, tr)
        click.echo(tr("verdict from the wire matches the recording") if same else
                   tr("verdict from the wire DIFFERS from the recording (or the proxy did not finish)"))
    return 0 if same else 1
