"""Deliberately broken terminals for ``possim certify --terminal-command``: raw TCP, ISO 8583 bytes.

Usage: python tests/broken_terminal.py HOST:PORT AMOUNT TID [--bug NAME] [--profile iso|cup]
[--keys FILE] [--journal FILE] [--resume]. It is not possim's terminal: a short script that frames
and encodes its messages with possim's codec and does the rest itself. Without ``--bug`` it follows
every rule of the certification plan: it sends one sale (0200), journals it before it goes out,
checks the answer's MAC (``--keys``), and when no valid answer comes in time reverses the sale
(iso: 0400 naming it in field 90, repeats as 0401, until acknowledged; cup: a copy of the sale with
the same STAN and field 39 98, at most 3 tries). ``--resume`` is how it starts again after a power
loss: it sends the reversal of the sale its journal still holds, and stops.

Each ``--bug`` breaks exactly one of those things, for the tests that show certification catches it
(``BUGS``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from possim.money.money import parse_amount
from possim.processes import keys as keyring
from possim.protocol import mti as M
from possim.protocol.errors import ProtocolError
from possim.protocol.mac import MacKey
from possim.protocol.messages import Message, OriginalData
from possim.protocol.profiles import get_profile

TIMEOUT = 1.5
#: An answer that ends a reversal: taken back (00) or nothing to take back (25).
ACKNOWLEDGED = frozenset({"00", "25"})
TRIES = {"iso": 8, "cup": 3}
BUGS = {
    "takes-refusal-as-done": "sends one reversal and stops, whatever the answer (a refusal 05 included)",
    "never-reverses": "a sale whose answer never came is left alone",
    "new-stan": "a CUP reversal gets a new STAN and names the sale in field 90, the ISO way",
    "forgets-pending": "the sale is not journaled, so a restart knows of no reversal owed",
    "accepts-wrong-mac": "an answer is taken without checking its MAC",
    "reverses-decline": "a declined sale is reversed as if its answer had been lost",
    "four-tries": "a CUP reversal is sent 4 times, whatever the answers",
}


class Link:
    """One TCP connection to the acquirer in the profile's framing, with the terminal's MAC key."""

    def __init__(self, address: str, profile: str, key: MacKey | None, bug: str | None) -> None:
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.dialect = get_profile(profile).wire
        self.deframer = self.dialect.framing.deframer()
        self.key, self.bug = key, bug
        self.frames: list[bytes] = []

    def exchange(self, msg: Message) -> Message | None:
        """Send one request; its answer, or None when no answer with a valid MAC came within ``TIMEOUT``."""
        self.sock.sendall(self.dialect.framing.frame(self.dialect.encode(msg, self.key)))
        want, deadline = M.response_to(msg.mti), time.monotonic() + TIMEOUT
        while (data := self._next(deadline)) is not None:
            answer = self._decode(data)
            if answer is not None and answer.mti == want and answer.stan == msg.stan:
                return answer
        return None

    def _decode(self, data: bytes) -> Message | None:
        check = None if self.key is None or self.bug == "accepts-wrong-mac" else self.key
        try:
            return self.dialect.decode(data, check)
        except ProtocolError:  # a wrong MAC proves nothing: as if no answer came
            return None

    def _next(self, deadline: float) -> bytes | None:
        while not self.frames:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                return None
            if not chunk:
                return None
            self.frames += self.deframer.feed(chunk)
        return self.frames.pop(0)

    def close(self) -> None:
        self.sock.close()


def _now() -> datetime:
    return datetime.now(UTC)


def sale(amount: str, tid: str, profile: str) -> Message:
    now, stan = _now(), os.getpid() % 800_000 + 1
    return Message(mti=M.PURCHASE, stan=f"{stan:06d}", transmission=now.strftime("%m%d%H%M%S"), tid=tid,
                   mid="BROKEN000000001", pan="4000000000000002", processing_code="000000",
                   amount=parse_amount(amount), local_time=now.strftime("%H%M%S"), local_date=now.strftime("%m%d"),
                   currency="156" if profile == "cup" else "978")


def reversal(orig: Message, attempt: int, profile: str, bug: str | None) -> Message:
    """The ``attempt``-th (from 1) reversal of ``orig`` in the profile's way (or the bug's)."""
    if profile == "cup" and bug != "new-stan":  # a copy of the original, the reason in field 39
        return replace(orig, mti=M.REVERSAL, response_code="98")
    stan = f"{(int(orig.stan) + attempt) % 1_000_000:06d}"
    named = OriginalData(orig.mti, orig.stan, orig.transmission)
    fresh = replace(orig, mti=M.REVERSAL if attempt == 1 or profile == "cup" else M.REVERSAL_REPEAT, stan=stan,
                    transmission=_now().strftime("%m%d%H%M%S"), original=named, local_time=None, local_date=None)
    return replace(fresh, response_code="98") if profile == "cup" else fresh


def reverse(link: Link, orig: Message, profile: str, bug: str | None) -> None:
    """Send reversals of ``orig`` until one is acknowledged, or the profile's tries run out."""
    tries = 4 if bug == "four-tries" else TRIES[profile]
    for attempt in range(1, tries + 1):
        answer = link.exchange(reversal(orig, attempt, profile, bug))
        if bug == "takes-refusal-as-done":
            return
        if bug != "four-tries" and answer is not None and answer.response_code in ACKNOWLEDGED:
            return


class Journal:
    """The sale in flight, written before it goes out (a restart reads it): JSON, or nothing."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def write(self, msg: Message) -> None:
        if self.path is not None:
            fields = {k: getattr(msg, k) for k in ("stan", "transmission", "tid", "mid", "pan", "processing_code",
                                                   "amount", "local_time", "local_date", "currency")}
            self.path.write_text(json.dumps(fields), encoding="utf-8")

    def read(self) -> Message | None:
        if self.path is None or not self.path.exists():
            return None
        return Message(mti=M.PURCHASE, **json.loads(self.path.read_text(encoding="utf-8")))

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def owes_reversal(answer: Message | None, bug: str | None) -> bool:
    """No valid answer: the sale must be taken back (unless the bug says otherwise)."""
    if answer is None:
        return bug != "never-reverses"
    return answer.response_code != "00" and bug == "reverses-decline"


def run(args: argparse.Namespace) -> None:
    key = keyring.load(Path(args.keys)).mac_key(args.tid) if args.keys else None
    journal = Journal(args.journal)
    link = Link(args.address, args.profile, key, args.bug)
    try:
        if args.resume:
            pending = journal.read()
            if pending is not None:
                reverse(link, pending, args.profile, args.bug)
            journal.clear()
            return
        msg = sale(args.amount, args.tid, args.profile)
        if args.bug != "forgets-pending":
            journal.write(msg)
        if owes_reversal(link.exchange(msg), args.bug):
            reverse(link, msg, args.profile, args.bug)
        journal.clear()
    finally:
        link.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("amount")
    parser.add_argument("tid")
    parser.add_argument("--bug", choices=sorted(BUGS))
    parser.add_argument("--profile", choices=("iso", "cup"), default="iso")
    parser.add_argument("--keys")
    parser.add_argument("--journal")
    parser.add_argument("--resume", action="store_true", help="start again after a power loss")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
