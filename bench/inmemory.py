"""In-memory figures: purchases per second against the pyiso8583 codec ceiling, a flaky day, 100,000 sales."""

from __future__ import annotations

import json
import subprocess
import sys

import iso8583
from common import ROOT, Row, interleaved, purchases, timed

from possim.scenario import load
from possim.simulation import simulate
from protocol import codec
from protocol import events as ev


def exchanged_frames() -> tuple[bytes, bytes]:
    """The 0200 and 0210 bytes one purchase of the benchmark scenario really exchanges."""
    result = simulate(purchases(1), "reversal")
    got = {}
    for stamped in result.trace.records:
        e = stamped.event
        if isinstance(e, ev.MsgReceived) and e.data and e.mti in ("0200", "0210"):
            got.setdefault(e.mti, bytes.fromhex(e.data))
    return got["0200"], got["0210"]


def codec_ceiling(frames: tuple[bytes, bytes], n: int) -> None:
    """pyiso8583 alone, per purchase: encode and decode the 0200 and the 0210 (fresh each time)."""
    docs = []
    for data in frames:
        doc = iso8583.decode(bytearray(data), codec.SPEC)[0]
        docs.append({k: v for k, v in doc.items() if k not in ("p", "1")})
    spec = codec.SPEC
    for _ in range(n):
        for doc in docs:
            raw, _ = iso8583.encode(dict(doc), spec)
            iso8583.decode(bytes(raw), spec)


def possim_codec(frames: tuple[bytes, bytes], n: int) -> None:
    """possim's codec per purchase: Message -> bytes -> Message for the same 0200 and 0210."""
    messages = [codec.decode(data) for data in frames]
    last = codec._last  # the one-frame memory, emptied so that every decode parses
    for _ in range(n):
        for msg in messages:
            data = codec.encode(msg)
            last.clear()
            codec.decode(data)


def run(rows: list[Row], quick: bool) -> float:
    """Returns the codec ceiling in purchases per second (the 100,000-sale baseline uses it)."""
    count = 1000 if quick else 3000
    frames = exchanged_frames()
    scenario = purchases(count)
    simulate(scenario, "reversal")  # warm imports
    n = 2000 if quick else 5000
    t = interleaved({"ceiling": lambda: codec_ceiling(frames, n), "codec": lambda: possim_codec(frames, n),
                     "memory": lambda: simulate(scenario, "reversal")}, 3 if quick else 5)
    ceiling, fast, memory = n / t["ceiling"], n / t["codec"], count / t["memory"]
    rows.append(Row("possim codec alone, per purchase (0200 + 0210 encoded and decoded)", fast, "purchases/s",
                    ceiling, "pyiso8583 alone, same frames", note="informative: the fast path of protocol/fast8583.py"))
    rows.append(Row(f"in memory, {count:,} purchases of one terminal, policy reversal", memory, "purchases/s",
                    ceiling, "pyiso8583 codec ceiling per purchase, same frames", ">= 0.7 x ceiling (aim 1.0)",
                    memory / ceiling >= 0.7))
    flaky = load(ROOT / "scenarios" / "flaky-network.toml")
    simulate(flaky, "reversal")
    cold = sorted(timed(lambda: simulate(flaky, "reversal")) for _ in range(3))[1] * 1000
    rows.append(Row("flaky-network, 200 sales, policy reversal (cold: nothing cached between runs)", cold, "ms",
                    note="informative; no goal in the issue"))
    return ceiling


def hundred_thousand(rows: list[Row], ceiling: float, quick: bool) -> None:
    """The nearest honest stand-in for 10,000 terminals x 10 purchases: 100,000 purchases of one terminal."""
    count = 20_000 if quick else 100_000
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bigrun.py"), str(count)], capture_output=True,
                          text=True, timeout=280, check=False)
    if done.returncode != 0:
        rows.append(Row("10,000 terminals x 10 purchases", None, "s", note=f"the run failed: {done.stderr[-300:]}"))
        return
    got = json.loads(done.stdout)
    note = (f"stand-in: fleets do not exist yet, so {count:,} purchases of ONE terminal; peak RSS "
            f"{got['max_rss_mib']:,.0f} MiB ({got['max_rss_mib'] * 1024 / count:.1f} KiB per purchase), "
            f"{got['trace_records']:,} trace records, {got['purchases_per_s']:,.0f} purchases/s")
    title = f"10,000 terminals x 10 purchases in memory (stand-in: {count:,} x 1 terminal), time"
    rows.append(Row(title, got["seconds"], "s", count / ceiling, "pyiso8583 codec alone for as many purchases",
                    "< 20 s", got["seconds"] < 20, note))
    rows.append(Row("10,000 terminals x 10 purchases in memory (same stand-in), peak memory", got["max_rss_mib"], "MiB",
                    target="< 512 MiB", met=got["max_rss_mib"] < 512, note="peak resident set of the run's process"))
