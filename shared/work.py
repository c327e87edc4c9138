"""Model work on threads of its own, bounded: a few calls run at a time, a bounded number wait, and past
that a call is refused at once (503 SERVICE_BUSY with Retry-After) instead of queueing without end.
Starlette's shared thread pool then stays free for the cheap work (database reads, text search, health
checks), which a tagging load would otherwise queue behind."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from shared.errors import ApiError, ErrorCode

T = TypeVar("T")
BUSY_RETRY_AFTER_S = 1
log = logging.getLogger("kfashion.work")


def run_nicer(increment: int) -> None:
    """Lower the calling thread's CPU priority by `increment` (Linux: priority is per thread, and threads
    it starts later inherit it, as ONNX Runtime's compute threads do when it creates a session here).
    Model work then yields the CPU to the event loop and cheap requests whenever both want it."""
    if increment <= 0 or not hasattr(os, "setpriority"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + increment)
    except OSError as error:  # not allowed here: the work still runs, at the usual priority
        log.warning("cannot lower the model threads' priority: %s", error)


class ModelExecutor:
    def __init__(self, workers: int, queue: int, nice: int = 0, name: str = "model"):
        self.workers = workers
        self.queue = queue
        self._pool = ThreadPoolExecutor(
            workers, thread_name_prefix=name, initializer=run_nicer, initargs=(nice,)
        )
        self._admitted = 0  # running and waiting

    @property
    def admitted(self) -> int:
        return self._admitted

    async def run(self, work: Callable[..., T], *args: object) -> T:
        if self._admitted >= self.workers + self.queue:
            raise ApiError(
                ErrorCode.SERVICE_BUSY,
                f"the models are busy ({self._admitted} calls running or waiting); try again shortly",
                {"retry_after_s": BUSY_RETRY_AFTER_S},
            )
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, functools.partial(work, *args)
            )
        finally:
            self._admitted -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
