"""Memory handed back after a busy spell (shared/memory.py): one trim per spell, none during one."""

from __future__ import annotations

import asyncio

import pytest

from shared import memory


def test_one_trim_after_each_busy_spell(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[float] = []
    monkeypatch.setattr(memory, "CHECK_S", 0.01)
    monkeypatch.setattr(memory, "_trim", lambda: trims.append(1))

    async def scenario() -> None:
        trimmer = memory.IdleTrimmer(idle_s=0.1)
        trimmer.start()
        for _ in range(10):  # busy: a request every 20 ms
            trimmer.touch()
            await asyncio.sleep(0.02)
        assert trims == []
        await asyncio.sleep(0.3)
        assert len(trims) == 1  # idle: trimmed once, not again while it stays idle
        trimmer.touch()
        await asyncio.sleep(0.3)
        assert len(trims) == 2
        await trimmer.stop()

    asyncio.run(scenario())
