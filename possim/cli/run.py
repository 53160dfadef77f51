"""``possim run``: one scenario under one policy, in virtual time or over a real transport, judged."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from possim.cli import inputs
from possim.cli import options as opt
from possim.cli.errors import InputError, as_input_error
from possim.cli.views import lang_option, print_run, write_views
from possim.judging.expect import failed_expectations
from possim.protocol import transports
from possim.protocol.transports import Transport, TransportError
from possim.scenario import Scenario
from possim.simulation import RunResult, simulate


@click.command("run")
@click.argument("scenario")
@opt.policy()
@opt.profile()
@opt.seed()
@opt.trace()
@opt.as_json("Print the summary as one JSON object.")
@click.option("--check-determinism", is_flag=True, help="Run twice in memory and compare the traces.")
@click.option("--timeline/--no-timeline", default=True, help="Print the event timeline.")
@opt.ledger("Keep the host ledger in this new SQLite file.")
@opt.journal("Keep the terminal journal in this new SQLite file.")
@opt.transport()
@opt.broker("MQTT broker URL (default: start a private Mosquitto).")
@opt.qos()
@opt.time_scale()
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write a self-contained HTML report (sequence chart, ledger, verdict).")
@click.option("--mermaid", "mermaid_path", type=click.Path(dir_okay=False), help="Write a Mermaid sequenceDiagram.")
@click.option("--force-redelivery", default=0, type=click.IntRange(0, 100),
              help="MQTT: the host withholds its PUBACK for the first N requests and reconnects, so the broker "
                   "redelivers them (QoS 1 duplicates).")
@lang_option()
@click.option("--terminal", "terminal_id", metavar="TID",
              help="Fleet scenarios: show this terminal's timeline (and its events in the report).")
@click.option("--progress/--no-progress", default=True,
              help="Fleet scenarios: show a progress bar on stderr (only when stderr is a terminal).")
def run_command(scenario: str, policy: str | None, profile: str | None, seed: int | None, trace_path: str | None,
                as_json: bool, check_determinism: bool, timeline: bool, ledger_path: str | None,
                journal_path: str | None, transport: str, broker_url: str | None, qos: int, time_scale: float,
                report_path: str | None, mermaid_path: str | None, force_redelivery: int, lang: str,
                terminal_id: str | None, progress: bool) -> None:
    """Run SCENARIO (a file, or the name of a shipped one) and judge it: in memory or over MQTT or TCP.

    A fleet scenario ([[terminals]]) prints the fleet's summary: totals, per policy and group,
    the 10 worst terminals; --terminal TID adds one terminal's timeline.

    Exit code 0: the run settled and met the file's [expect]; 1: it did not; 2: bad input.
    """
    sc = inputs.scenario(scenario).with_profile(profile).in_market(lang)
    with as_input_error(TransportError):
        chosen = transports.get(transport)
    if sc.is_fleet:
        from possim.cli.fleet import run_fleet

        if not chosen.virtual_time or ledger_path or journal_path or mermaid_path or check_determinism:
            raise InputError("a fleet scenario runs in memory here (no --transport, --ledger, --journal, --mermaid, "
                             "--check-determinism); drive a fleet over MQTT or TCP with possim load")
        sys.exit(run_fleet(sc, policy, seed, as_json, trace_path, report_path, terminal_id, lang, progress))
    if terminal_id:
        raise InputError("--terminal is for fleet scenarios ([[terminals]])")
    inputs.fresh(ledger_path, journal_path)
    inputs.writable(trace_path, report_path, mermaid_path, ledger_path, journal_path)
    if check_determinism:
        sys.exit(_determinism(sc, policy, seed))
    if not chosen.virtual_time:
        inputs.scaled(sc, time_scale)
    policy, seed = policy or sc.model.policy, sc.model.seed if seed is None else seed
    if chosen.broker:
        result = _run_broker(chosen, sc, policy, seed, broker_url, qos, time_scale, ledger_path, journal_path,
                             force_redelivery)
    elif not chosen.virtual_time:
        from possim.running.realtime import run_over

        with as_input_error(TransportError):
            result = asyncio.run(run_over(chosen, sc, policy, seed, None, qos, time_scale, ledger_path,
                                          journal_path))
    else:
        # Only the summary (and the file): the trace is written as the run goes (or, with no file, only
        # counted), no reconciliation is kept.
        lean = as_json and not (report_path or mermaid_path)
        result = simulate(sc, policy, seed, ledger_path=ledger_path, journal_path=journal_path,
                          trace_to=trace_path if lean else None, reconciled=not lean,
                          trace=not lean or trace_path is not None)
    if trace_path:
        result.trace.write(trace_path)
    write_views(result, report_path, mermaid_path, lang)
    failures = failed_expectations(sc.model.expect, result.policy, result.verdict.summary())
    if as_json:
        click.echo(json.dumps({**result.summary(), "expectations_failed": failures}, sort_keys=True))
    else:
        print_run(result, failures, timeline, lang)
    sys.exit(0 if result.quiescent and not failures else 1)


def _run_broker(chosen: Transport, sc: Scenario, policy: str, seed: int, broker_url: str | None, qos: int,
                time_scale: float, ledger_path: str | None, journal_path: str | None, force_redelivery: int
                ) -> RunResult:
    """Over a broker the user names, or a private Mosquitto started and stopped around the run."""
    from possim.processes.broker import Broker, BrokerError
    from possim.running.realtime import run_over

    private = None
    if broker_url is None:
        with as_input_error(BrokerError):
            private = Broker().start()
        broker_url = private.url
    try:
        address = inputs.address(broker_url)
        url = f"{chosen.scheme}://{address.host}:{address.port}"
        with as_input_error(TransportError):
            return asyncio.run(run_over(chosen, sc, policy, seed, url, qos, time_scale, ledger_path, journal_path,
                                        force_redelivery=force_redelivery))
    finally:
        if private:
            private.close()


def _determinism(sc: Scenario, policy: str | None, seed: int | None) -> int:
    """Run twice in memory; the first differing trace line, if any, is the evidence."""
    first = simulate(sc, policy, seed).trace.lines()
    second = simulate(sc, policy, seed).trace.lines()
    for i, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            click.echo(f"NOT deterministic: traces differ at event {i + 1}:\n  first:  {a}\n  second: {b}")
            return 1
    if len(first) != len(second):
        click.echo(f"NOT deterministic: {len(first)} events vs {len(second)} events")
        return 1
    click.echo(f"deterministic: two runs gave {len(first)} identical trace events")
    return 0

