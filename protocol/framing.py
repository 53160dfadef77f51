"""ISO 8583 over TCP: each message is preceded by a 2-byte big-endian length (the common
"2-byte binary header"; the header does not count itself). TCP is a byte stream, so the
receiver reassembles frames from whatever chunks arrive."""

from __future__ import annotations

from protocol.errors import ProtocolError

HEADER = 2
MAX_FRAME = 0xFFFF


def frame(data: bytes) -> bytes:
    if not 0 < len(data) <= MAX_FRAME:
        raise ProtocolError(f"message of {len(data)} bytes cannot be framed (1..{MAX_FRAME})")
    return len(data).to_bytes(HEADER, "big") + data


class Deframer:
    """Feed it stream chunks; it returns the complete messages they finish."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        out: list[bytes] = []
        while len(self._buffer) >= HEADER:
            length = int.from_bytes(self._buffer[:HEADER], "big")
            if length == 0:
                raise ProtocolError("zero-length frame")
            if len(self._buffer) < HEADER + length:
                break
            out.append(bytes(self._buffer[HEADER:HEADER + length]))
            del self._buffer[:HEADER + length]
        return out

    @property
    def pending(self) -> int:
        return len(self._buffer)
