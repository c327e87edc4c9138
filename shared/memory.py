"""Memory handed back after a load. glibc's allocator keeps the heap a burst of requests grew (decoded
photos, model inputs, JSON answers, spread over many threads' arenas) for the process's life; once the
service has been idle a while, `malloc_trim` returns the free part to the system."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import time

log = logging.getLogger("kfashion.memory")
IDLE_S = 10.0  # no request for this long: the load is over
CHECK_S = 5.0


def _trim() -> None:
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to hand back this way
        ctypes.CDLL(name).malloc_trim(0)


class IdleTrimmer:
    """Trims once after each busy spell (`touch` on every request), never during one."""

    def __init__(self, idle_s: float = IDLE_S):
        self.idle_s = idle_s
        self.last_request = time.monotonic()
        self._trimmed = True
        self._task: asyncio.Task | None = None

    def touch(self) -> None:
        self.last_request = time.monotonic()
        self._trimmed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_S)
            if not self._trimmed and time.monotonic() - self.last_request >= self.idle_s:
                self._trimmed = True
                await asyncio.to_thread(_trim)
