"""When deliveries are tried again: the attempt cap, the backoff between attempts and how long a
worker's claim on one lasts. Pure functions of the settings; the store applies them."""

from __future__ import annotations

import random
from collections.abc import Callable

from shared.config import Settings

MAX_ATTEMPTS = 8  # the first attempt and up to 7 retries


def retry_delay(
    attempts_made: int, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after ``attempts_made`` failed attempts: ``base * 2**(n-1)`` capped at
    ``cap``, with "equal jitter" (between half and all of it) so that receivers that failed
    together are not all retried in the same instant."""
    ceiling = min(cap, base * 2 ** max(attempts_made - 1, 0))
    return ceiling / 2 + rng() * ceiling / 2


def lease_seconds(settings: Settings) -> float:
    # An attempt makes several network calls bounded by delivery_timeout (an SMTP conversation
    # has a handful): the lease must outlast them or a slow attempt could be taken over.
    return max(settings.delivery_lease, settings.delivery_timeout * 6)
