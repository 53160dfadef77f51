"""The one error type a peer's bad bytes can raise."""

from __future__ import annotations


class ProtocolError(ValueError):
    """A frame that is not a valid possim ISO 8583 message.

    ``response_code`` is the ISO 8583 field 39 a host would answer with (30 = format error).
    """

    response_code = "30"
