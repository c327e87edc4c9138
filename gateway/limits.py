"""Rate limits at the gateway: token buckets per client address and per API key, kept in this process.

Each bucket holds one minute's worth of requests and refills evenly, so a client may send a burst of up to
its per-minute limit and then that many a minute. Behind a proxy, the client's address is the proxy's
unless uvicorn trusts its forwarded headers (`--forwarded-allow-ips`, docs/deploy.md)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_BUCKETS = 100_000  # clients remembered; the least recently seen are forgotten first (a full bucket)


class TokenBuckets:
    """`per_minute` requests a minute for each name (an address, a key's id); 0 means no limit."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # name -> (tokens, when)

    def _tokens(self, name: str, now: float) -> float:
        tokens, when = self._buckets.get(name, (self.per_minute, now))
        return min(self.per_minute, tokens + (now - when) * self.per_minute / 60)

    def wait_s(self, name: str) -> int:
        """Whole seconds until `name` may send again; 0: now."""
        if not self.per_minute:
            return 0
        missing = 1 - self._tokens(name, self.clock())
        return max(0, math.ceil(missing * 60 / self.per_minute)) if missing > 0 else 0

    def take(self, name: str) -> int:
        """Count one request of `name`: 0 when it may go, else whole seconds until it may (not counted)."""
        if not self.per_minute:
            return 0
        now = self.clock()
        tokens = self._tokens(name, now)
        if tokens < 1:
            return math.ceil((1 - tokens) * 60 / self.per_minute)
        self._buckets[name] = (tokens - 1, now)
        self._buckets.move_to_end(name)
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return 0
