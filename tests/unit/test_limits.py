"""Token buckets of the gateway's rate limits (gateway/limits.py) on a clock the test moves."""

from __future__ import annotations

import pytest

from gateway import limits
from gateway.limits import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_holds_a_minute_and_refills_evenly() -> None:
    clock = Clock()
    buckets = TokenBuckets(60, clock)
    assert [buckets.take("a") for _ in range(61)] == [0] * 60 + [1]
    assert buckets.take("b") == 0  # another client has its own
    clock.now += 0.5
    assert buckets.wait_s("a") == 1 and buckets.take("a") == 1
    clock.now += 0.5
    assert buckets.wait_s("a") == 0 and buckets.take("a") == 0 and buckets.take("a") == 1
    clock.now += 3600  # an idle hour refills to one minute's worth, no more
    assert [buckets.take("a") for _ in range(61)].count(0) == 60


def test_no_limit_and_a_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    assert all(TokenBuckets(0).take("a") == 0 for _ in range(1000))
    monkeypatch.setattr(limits, "MAX_BUCKETS", 3)
    clock = Clock()
    buckets = TokenBuckets(1, clock)
    for name in "abcd":
        assert buckets.take(name) == 0
    assert buckets.take("d") == 60 and buckets.take("a") == 0  # "a", least recently seen, was forgotten
