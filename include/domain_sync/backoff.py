"""One backoff for every retry loop of the sync (Graph pages, LDAP operations).

Exponential with jitter (base * 2^(n-1), capped, times 0.5..1), or the wait the service asked for
(Retry-After); bounded by a count of attempts and by a time budget, whichever ends first. The budget
counts from the last success (`progress()`), so a long read that keeps moving is never cut off.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    budget_seconds: float
    max_attempts: int = 10
    base_seconds: float = 0.5
    cap_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    rng: random.Random | None = None
    attempts: int = 0
    retries: int = 0
    _started: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._started = self.clock()

    def progress(self) -> None:
        """A request succeeded: the count and the budget start again."""
        self.attempts = 0
        self._started = self.clock()

    def waited(self) -> float:
        return self.clock() - self._started

    def delay(self, attempt: int) -> float:
        rng = self.rng or random
        return min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1)) * (0.5 + rng.random() / 2)

    def next_delay(self, asked: float | None = None) -> float | None:
        """The wait before the next attempt after a failure, or None when the count or the budget is spent."""
        self.attempts += 1
        wait = asked if asked is not None else self.delay(self.attempts)
        if self.attempts >= self.max_attempts or self.waited() + wait > self.budget_seconds:
            return None
        self.retries += 1
        return wait

    def exhausted(self) -> str:
        """Why the retries ended, for the error message."""
        return (f"{self.attempts} attempts in {self.waited():.0f}s (limits: {self.max_attempts} attempts, "
                f"{self.budget_seconds:.0f}s)")
