"""Real-time figures: possim's one-process ``run_live`` over MQTT and TCP against raw baselines.

Every baseline runs in the same bench run, on the same machine state, with the same
request/response sizes as possim's 0200/0210 and, for MQTT, through the same Mosquitto
configuration (``possim.broker.Broker``), the same QoS and TCP_NODELAY sockets. possim
has one request in flight per terminal process today; figures at 50 in flight need a
fleet or a load command, which do not exist yet, so only their baselines are printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiomqtt
from common import ROOT, Row, purchases
from inmemory import exchanged_frames

from possim.broker import Broker
from possim.realtime import run_mqtt, run_tcp
from protocol import events as ev
from protocol.framing import Deframer, frame
from protocol.mqtt import NODELAY, BrokerAddress

T = TypeVar("T")
NOT_YET = ("a possim terminal has one request in flight; `possim load` (new) drives many terminals at a fixed "
           "rate, not a fixed number in flight, and this bench does not drive it yet")


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


async def mqtt_echo(port: int, qos: int, count: int, in_flight: int, sizes: tuple[int, int]) -> float:
    """Raw aiomqtt request/response: one client answers every request on another topic, at once."""
    request, response = b"q" * sizes[0], b"r" * sizes[1]
    clients = [aiomqtt.Client("127.0.0.1", port, identifier=f"bench-{name}-{os.getpid()}", socket_options=NODELAY)
               for name in ("host", "term")]
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


def run_mqtt_rows(rows: list[Row], quick: bool) -> None:
    count = 300 if quick else 1000
    sizes = tuple(len(f) for f in exchanged_frames())
    scenario = purchases(count, every=0.0)
    broker = Broker().start()
    try:
        address = BrokerAddress("127.0.0.1", broker.port)
        for qos in (0, 1):
            possim: list[float] = []
            echo: list[float] = []
            for _ in range(2):  # interleaved: possim, echo, possim, echo
                result = _bounded(run_mqtt(scenario, "reversal", 1, address, qos=qos), 120)
                if result is not None:
                    possim.append(_rate(result, count))
                got = _bounded(mqtt_echo(broker.port, qos, count, 1, sizes), 30)  # type: ignore[arg-type]
                if got is not None:
                    echo.append(got)
            if not possim or not echo:
                rows.append(Row(f"MQTT QoS {qos}, 1 in flight", None, "purchases/s",
                                note="every attempt timed out (a QoS 0 message lost on the way?)"))
                continue
            mine, base = max(possim), max(echo)
            rows.append(Row(f"MQTT QoS {qos}, 1 in flight, {count:,} purchases (run_live, one process)", mine,
                            "purchases/s", base, f"raw aiomqtt echo, {sizes[0]}/{sizes[1]}-byte payloads",
                            ">= 0.8 x raw aiomqtt", mine / base >= 0.8, "best of 2 interleaved runs each"))
        echo50 = _bounded(mqtt_echo(broker.port, 1, count * 2, 50, sizes), 60)  # type: ignore[arg-type]
    finally:
        broker.close()
    rows.append(Row("MQTT QoS 1, 50 in flight", None, "purchases/s", echo50, "raw aiomqtt echo, 50 in flight",
                    ">= 0.8 x raw aiomqtt", None, NOT_YET))


def run_tcp_rows(rows: list[Row], quick: bool) -> None:
    count = 300 if quick else 1000
    sizes = tuple(len(f) for f in exchanged_frames())
    scenario = purchases(count, every=0.0)
    possim, sim = [], []
    for _ in range(2):
        possim.append(_rate(asyncio.run(run_tcp(scenario, "reversal", 1)), count))
        got = iso8583sim(count, 1)
        if got is not None:
            sim.append(got["per_s"])
    mine = max(possim)
    if sim:
        base, name, note = max(sim), "iso8583sim's own MockHost and run_load, 1 in flight", \
            "best of 2 interleaved runs each; iso8583sim's sample 0100 request"
    else:
        base = asyncio.run(tcp_echo(count, 1, sizes))  # type: ignore[arg-type]
        name, note = "raw asyncio TCP echo of the same frames", "iso8583sim is not installed: raw echo baseline"
    rows.append(Row(f"TCP, 1 in flight, {count:,} purchases (run_live, one process)", mine, "purchases/s", base, name,
                    ">= iso8583sim", mine >= base, note))
    echo = asyncio.run(tcp_echo(count, 1, sizes))  # type: ignore[arg-type]
    rows.append(Row("TCP, 1 in flight: raw asyncio echo of the same frames (a second, lower-level baseline)", mine,
                    "purchases/s", echo, "raw asyncio TCP echo, 2-byte framing", note="informative"))
    got50 = iso8583sim(count * 3, 50)
    base50 = got50["per_s"] if got50 else asyncio.run(tcp_echo(count * 3, 50, sizes))  # type: ignore[arg-type]
    rows.append(Row("TCP, 50 in flight", None, "purchases/s", base50,
                    "iso8583sim, 50 in flight" if got50 else "raw asyncio TCP echo, 50 in flight", ">= iso8583sim",
                    None, NOT_YET))
