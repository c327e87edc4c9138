"""The bounded executor of model calls (shared/work.py): a few run, a bounded number wait, the rest are
refused at once with a 503 that says when to come back."""

from __future__ import annotations

import asyncio
import threading

import pytest

from shared.errors import ApiError, ErrorCode
from shared.work import ModelExecutor


def test_calls_past_the_queue_are_refused_at_once() -> None:
    executor = ModelExecutor(workers=1, queue=1)
    release = threading.Event()
    threads: list[str] = []

    def work(n: int) -> int:
        threads.append(threading.current_thread().name)
        release.wait(5)
        return n * 2

    async def scenario() -> None:
        running = asyncio.ensure_future(executor.run(work, 1))
        waiting = asyncio.ensure_future(executor.run(work, 2))
        await asyncio.sleep(0.05)
        assert executor.admitted == 2
        with pytest.raises(ApiError) as refused:
            await executor.run(work, 3)
        assert refused.value.code == ErrorCode.SERVICE_BUSY and refused.value.status == 503
        assert refused.value.details["retry_after_s"] >= 1
        release.set()
        assert await asyncio.gather(running, waiting) == [2, 4]
        assert executor.admitted == 0 and await executor.run(work, 5) == 10  # room again

    asyncio.run(scenario())
    executor.close()
    assert all(name.startswith("model") for name in threads)  # its own threads, not the shared pool
