"""A deliberately broken terminal for ``possim certify --terminal-command``: raw TCP, ISO 8583 bytes.

Usage: python tests/broken_terminal.py HOST:PORT AMOUNT TID. It sends one 0200, waits for its
0210 and, when none comes in time, sends one 0400 naming the sale in field 90, and then stops,
whatever the answer: it takes a refused reversal (05) as done, the bug certification must catch.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from datetime import UTC, datetime

from possim.money import parse_amount
from possim.protocol import codec
from possim.protocol.messages import Message, OriginalData

TIMEOUT = 1.5


def exchange(sock: socket.socket, msg: Message) -> Message | None:
    """Send one request; its answer, or None after ``TIMEOUT`` (other frames are skipped)."""
    data = codec.encode(msg)
    sock.sendall(struct.pack(">H", len(data)) + data)
    sock.settimeout(TIMEOUT)
    try:
        while True:
            head = sock.recv(2, socket.MSG_WAITALL)
            if len(head) < 2:
                return None
            answer = codec.decode(sock.recv(struct.unpack(">H", head)[0], socket.MSG_WAITALL))
            if answer.stan == msg.stan:
                return answer
    except TimeoutError:
        return None


def main(address: str, amount: str, tid: str) -> None:
    host, _, port = address.rpartition(":")
    now = datetime.now(UTC)
    stan = os.getpid() % 900_000 + 1
    sale = Message(mti="0200", stan=f"{stan:06d}", transmission=now.strftime("%m%d%H%M%S"), tid=tid,
                   mid="BROKEN000000001", pan="4000000000000002", processing_code="000000",
                   amount=parse_amount(amount), local_time=now.strftime("%H%M%S"), local_date=now.strftime("%m%d"),
                   currency="978")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        if exchange(sock, sale) is not None:
            return
        reversal = Message(mti="0400", stan=f"{stan + 1:06d}", transmission=datetime.now(UTC).strftime("%m%d%H%M%S"),
                           tid=tid, mid=sale.mid, pan=sale.pan, processing_code="000000", amount=sale.amount,
                           currency="978", original=OriginalData(sale.mti, sale.stan, sale.transmission))
        exchange(sock, reversal)  # any answer, or none, is taken as done: the bug


if __name__ == "__main__":
    main(*sys.argv[1:4])
