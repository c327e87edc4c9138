"""Serving an app with uvicorn, the one way every service starts: uvicorn's HTTP/1.1 protocol with a
deadline for each request's head. uvicorn times only idle keep-alive connections (and restarts that timer
on every byte), so a client that sends its headers a byte at a time would hold a connection forever."""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


def head_deadline_protocol(timeout_s: float) -> type[H11Protocol]:
    """An H11Protocol that closes a connection whose request line and headers have not all arrived within
    `timeout_s` of connecting or of its previous answer."""

    class HeadDeadlineProtocol(H11Protocol):
        _head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_deadline()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:  # a whole head came
                self._disarm_head_deadline()

        def on_response_complete(self) -> None:
            self._arm_head_deadline()  # before: the next pipelined request's head may already be here
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_deadline()
            super().connection_lost(exc)

        def _arm_head_deadline(self) -> None:
            self._disarm_head_deadline()
            self._head_deadline = self.loop.call_later(timeout_s, self._head_too_slow)

        def _disarm_head_deadline(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_too_slow(self) -> None:
            self._head_deadline = None
            if not self.transport.is_closing():
                self.logger.info("closed a connection whose request head took over %.0f s", timeout_s)
                self.transport.close()

    return HeadDeadlineProtocol


def serve(app: object, host: str, port: int, log_level: str, head_timeout_s: float) -> None:
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=head_deadline_protocol(head_timeout_s))  # type: ignore[arg-type]
