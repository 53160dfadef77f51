"""Terminal settings: identity, timers and the recovery policy of one run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

Policy = Literal["none", "reversal", "query", "query-then-reversal"]
POLICIES: tuple[str, ...] = get_args(Policy)


@dataclass(frozen=True, slots=True)
class TerminalConfig:
    """Defaults follow common acquirer practice: 30 s response timeout, reversal retried with
    doubling backoff (CUP terminals retry 3x; SAF queues retry far longer), status queries
    every 5 s (Alipay/WeChat guidance), completion advices stored and forwarded until acknowledged."""

    tid: str = "POS00001"
    mid: str = "MERCHANT0000001"
    currency: str = "978"
    policy: Policy = "none"
    epoch: datetime = datetime(2026, 11, 25, 10, 0, 0)
    stan_start: int = 1
    response_timeout: float = 30.0
    reversal_timeout: float = 30.0
    reversal_attempts: int = 6
    backoff_initial: float = 5.0
    backoff_factor: float = 2.0
    backoff_max: float = 60.0
    query_timeout: float = 10.0
    query_attempts: int = 3
    query_interval: float = 5.0
    advice_timeout: float = 30.0
    advice_attempts: int = 8

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based): initial * factor^(attempt-1), capped."""
        return min(self.backoff_max, self.backoff_initial * self.backoff_factor ** max(0, attempt - 1))

    @property
    def reverses(self) -> bool:
        return self.policy in ("reversal", "query-then-reversal")

    @property
    def queries(self) -> bool:
        return self.policy in ("query", "query-then-reversal")

    @property
    def forwards_advices(self) -> bool:
        """Store-and-forward of completion advices is part of every recovery policy, not of 'none'."""
        return self.policy != "none"
