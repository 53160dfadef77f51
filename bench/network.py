"""Real-time figures: possim over MQTT and TCP against raw baselines, at 1 and at 50 in flight.

Every baseline runs in the same bench run, on the same machine state, interleaved with
possim's attempts, with the same request/response sizes as possim's 0200/0210 and, for MQTT,
through the same Mosquitto configuration (``possim.broker.Broker``), the same QoS and
TCP_NODELAY sockets. At 1 in flight possim is ``run_live`` (one terminal, one host, one
process); at 50 in flight it is ``possim load``'s fleet (``possim.load.run_load``): 50
terminals, each with one purchase in flight and the next one queued behind it, so 50
requests are in flight all along, against one host in the same process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import aiomqtt
from common import ROOT, Row, purchases
from inmemory import exchanged_frames
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from possim.broker import Broker
from possim.protocol import events as ev
from possim.protocol.framing import Deframer, frame
from possim.protocol.mqtt import NODELAY, BrokerAddress
from possim.realtime import run_mqtt, run_tcp

T = TypeVar("T")
#: Requests in flight for the concurrent rows: terminals in possim's fleet, outstanding requests in the baselines.
MANY = 50


def _bounded(work: Coroutine[Any, Any, T], seconds: float) -> T | None:
    """Run ``work`` to its end, or give up after ``seconds`` (then ``None``): a lost QoS 0 message
    would otherwise leave a request/response loop waiting for ever."""
    try:
        return asyncio.run(asyncio.wait_for(work, seconds))
    except TimeoutError:
        print(f"    (an attempt timed out after {seconds:g} s and is not counted)", flush=True)
        return None


def _rate(result: Any, count: int) -> float:
    """Purchases per second from the first request sent to the last outcome (connect and settle excluded)."""
    records = result.trace.records
    first = next(s.t for s in records if isinstance(s.event, ev.MsgSent))
    last = max(s.t for s in records if isinstance(s.event, ev.TxnOutcome))
    approved = sum(1 for s in records if isinstance(s.event, ev.TxnOutcome) and s.event.status == "approved")
    if approved != count:
        print(f"    ({approved} of {count} purchases approved in this attempt)", flush=True)
    return approved / (last - first)


def _load_rate(transport: str, count: int, in_flight: int, broker_url: str | None = None, qos: int = 1
               ) -> float | None:
    """possim's many-terminal path (``possim load``): ``in_flight`` terminals share ``count`` purchases,
    all queued at the start, so each terminal always has one in flight. Purchases per second from the
    start of the sales to the last outcome (connecting, settling and judging excluded); ``None`` if
    the attempt timed out."""
    from possim.load import LoadPlan, run_load

    rate = 1e6  # every sale is due at once; each terminal pays its share back to back
    plan = LoadPlan(terminals=in_flight, rate=rate, duration=count / rate, transport=transport,
                    broker_url=broker_url, qos=qos)
    report = _bounded(run_load(plan), 120)
    if report is None:
        return None
    if report.completed != count or not report.ok:
        print(f"    ({report.completed} of {count} purchases completed; settled={report.settled})", flush=True)
    return report.completed / report.sale_seconds


async def mqtt_echo(port: int, qos: int, count: int, in_flight: int, sizes: tuple[int, int],
                    v5: bool = True) -> float:
    """Raw aiomqtt request/response: one client answers every request on another topic, at once.

    ``v5``: the clients connect as possim's do (MQTT 5, a persistent session with a session
    expiry interval: ``protocol.mqtt.MqttEndpoint``), so both sides of the comparison carry the
    same protocol work (MQTT 5 properties on every PUBLISH and PUBACK); otherwise MQTT 3.1.1
    with a clean session, aiomqtt's default, printed as a second, informative baseline."""
    request, response = b"q" * sizes[0], b"r" * sizes[1]
    run = uuid.uuid4().hex[:8]
    clients = [_echo_client(port, f"bench-{name}-{run}", v5) for name in ("host", "term")]
    for client in clients:
        client.pending_calls_threshold = 10**9
    host, term = clients
    async with host, term:
        await host.subscribe("bench/req", qos=qos)
        await term.subscribe("bench/resp", qos=qos)

        async def serve() -> None:
            # Serves exactly ``count`` requests and ends by itself: cancelling it instead hung the
            # QoS 1 runs now and then. aiomqtt awaits each PUBACK through asyncio.wait_for, which on
            # Python 3.11 swallows a cancellation that arrives as the PUBACK does (CPython gh-86296),
            # so the task went on waiting for a request that never came.
            served = 0
            async for _ in host.messages:
                await host.publish("bench/resp", response, qos=qos)
                served += 1
                if served == count:
                    return

        server = asyncio.create_task(serve())
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        for _ in range(min(in_flight, count)):
            await term.publish("bench/req", request, qos=qos)
            sent += 1
        got = 0
        async for _ in term.messages:
            got += 1
            if got == count:
                break
            if sent < count:
                await term.publish("bench/req", request, qos=qos)
                sent += 1
        elapsed = loop.time() - start
        await server
    return count / elapsed


async def tcp_echo(count: int, in_flight: int, sizes: tuple[int, int]) -> float:
    """Raw asyncio TCP request/response with the same 2-byte length framing and frame sizes."""
    response = frame(b"r" * sizes[1])

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        deframer = Deframer()
        try:
            while chunk := await reader.read(65536):
                writer.write(response * len(deframer.feed(chunk)))
        except (asyncio.CancelledError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = frame(b"q" * sizes[0])
    loop = asyncio.get_running_loop()
    start = loop.time()
    writer.write(request * min(in_flight, count))
    sent, got, deframer = min(in_flight, count), 0, Deframer()
    while got < count:
        n = len(deframer.feed(await reader.read(65536)))
        got += n
        more = min(n, count - sent)
        if more:
            writer.write(request * more)
            sent += more
    elapsed = loop.time() - start
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return count / elapsed


def iso8583sim(count: int, in_flight: int) -> dict[str, Any] | None:
    """iso8583sim's own host and load client in their own process; ``None`` if not installed."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "iso8583sim_load.py"), str(count), str(in_flight)],
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode == 3:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"iso8583sim load failed: {done.stderr[-400:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _echo_client(port: int, identifier: str, v5: bool) -> aiomqtt.Client:
    if not v5:
        return aiomqtt.Client("127.0.0.1", port, identifier=identifier, socket_options=NODELAY)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho has no annotations
    props.SessionExpiryInterval = 86_400
    return aiomqtt.Client("127.0.0.1", port, identifier=identifier, socket_options=NODELAY,
                          protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props)


def _best_of(attempts: int, runs: dict[str, Callable[[], float | None]]) -> dict[str, list[float]]:
    """Each run ``attempts`` times in turns (A B A B), so machine noise hits all alike; timed-out attempts dropped."""
    got: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(attempts):
        for name, run in runs.items():
            figure = run()
            if figure is not None:
                got[name].append(figure)
    return got


def _mqtt_row(goal: str, got: dict[str, list[float]], baseline_name: str) -> Row:
    if not got["possim"] or not got["echo"]:
        missing = " and ".join(name for name in ("possim", "echo") if not got[name])
        return Row(goal, None, "purchases/s", note=f"every {missing} attempt timed out")
    mine, base = max(got["possim"]), max(got["echo"])
    note = "best of 2 interleaved runs each; the echo connects as possim does (MQTT 5, persistent session)"
    extra: dict[str, Any] = {}
    if got.get("echo311"):
        v311 = max(got["echo311"])
        note += f"; MQTT 3.1.1 clean-session echo {v311:,.1f}/s (ratio {mine / v311:.2f}, informative)"
        extra["echo_mqtt311_per_s"] = v311
    return Row(goal, mine, "purchases/s", base, baseline_name, ">= 0.8 x raw aiomqtt", mine / base >= 0.8, note,
               extra)


def run_mqtt_rows(rows: list[Row], quick: bool) -> None:
    count = 300 if quick else 1000
    request, response = exchanged_frames()
    sizes = (len(request), len(response))
    scenario = purchases(count, every=0.0)
    broker = Broker().start()
    try:
        address = BrokerAddress("127.0.0.1", broker.port)
        for qos in (0, 1):
            got = _best_of(2, {
                "possim": lambda q=qos: _live_rate(run_mqtt(scenario, "reversal", 1, address, qos=q), count),  # type: ignore[misc]
                "echo": lambda q=qos: _bounded(mqtt_echo(broker.port, q, count, 1, sizes), 30),  # type: ignore[misc]
                "echo311": lambda q=qos: _bounded(mqtt_echo(broker.port, q, count, 1, sizes, False), 30),  # type: ignore[misc]
            })
            rows.append(_mqtt_row(f"MQTT QoS {qos}, 1 in flight, {count:,} purchases (run_live, one process)", got,
                                  f"raw aiomqtt echo, {sizes[0]}/{sizes[1]}-byte payloads"))
        many = count * 3
        got = _best_of(2, {
            "possim": lambda: _load_rate("mqtt", many, MANY, broker.url, qos=1),
            "echo": lambda: _bounded(mqtt_echo(broker.port, 1, many, MANY, sizes), 60),
            "echo311": lambda: _bounded(mqtt_echo(broker.port, 1, many, MANY, sizes, False), 60),
        })
        rows.append(_mqtt_row(f"MQTT QoS 1, {MANY} in flight, {many:,} purchases (possim load: {MANY} terminals)",
                              got, f"raw aiomqtt echo, {MANY} in flight, {sizes[0]}/{sizes[1]}-byte payloads"))
    finally:
        broker.close()


def _live_rate(work: Coroutine[Any, Any, Any], count: int) -> float | None:
    result = _bounded(work, 120)
    return None if result is None else _rate(result, count)


def run_tcp_rows(rows: list[Row], quick: bool) -> None:
    count = 300 if quick else 1000
    sizes = tuple(len(f) for f in exchanged_frames())
    scenario = purchases(count, every=0.0)
    have_sim = iso8583sim(10, 1) is not None

    def baseline(n: int, in_flight: int) -> float | None:
        if have_sim:
            got = iso8583sim(n, in_flight)
            return None if got is None else float(got["per_s"])
        return asyncio.run(tcp_echo(n, in_flight, sizes))  # type: ignore[arg-type]

    if have_sim:
        name, note = "iso8583sim's own MockHost and run_load", "best of 2 interleaved runs each; " \
            "iso8583sim's sample 0100 request"
    else:
        name, note = "raw asyncio TCP echo of the same frames", "iso8583sim is not installed: raw echo baseline"
    got = _best_of(2, {"possim": lambda: _live_rate(run_tcp(scenario, "reversal", 1), count),
                       "base": lambda: baseline(count, 1)})
    mine = max(got["possim"])
    rows.append(Row(f"TCP, 1 in flight, {count:,} purchases (run_live, one process)", mine, "purchases/s",
                    max(got["base"]), f"{name}, 1 in flight", ">= iso8583sim", mine >= max(got["base"]), note))
    echo = asyncio.run(tcp_echo(count, 1, sizes))  # type: ignore[arg-type]
    rows.append(Row("TCP, 1 in flight: raw asyncio echo of the same frames (a second, lower-level baseline)", mine,
                    "purchases/s", echo, "raw asyncio TCP echo, 2-byte framing", note="informative"))
    many = count * 3
    got = _best_of(2, {"possim": lambda: _load_rate("tcp", many, MANY), "base": lambda: baseline(many, MANY)})
    if not got["possim"]:
        rows.append(Row(f"TCP, {MANY} in flight", None, "purchases/s", note="every possim attempt timed out"))
        return
    mine = max(got["possim"])
    rows.append(Row(f"TCP, {MANY} in flight, {many:,} purchases (possim load: {MANY} terminals, one connection each)",
                    mine, "purchases/s", max(got["base"]), f"{name}, {MANY} in flight", ">= iso8583sim",
                    mine >= max(got["base"]), note))
