"""Fetching image URLs: what a failed download tells the client."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from gateway.inputs import fetch
from kfashion.stack import free_port
from shared.errors import ApiError, ErrorCode
from shared.settings import ImageLimits


def test_a_failed_download_says_what_happened_in_plain_words() -> None:
    """Not the exception's class, errno or addresses: those describe this server's network."""
    url = f"http://127.0.0.1:{free_port()}/photo.jpg"  # nothing listens there

    async def run() -> None:
        async with httpx2.AsyncClient(timeout=5) as client:
            await fetch(client, url, ImageLimits())

    with pytest.raises(ApiError) as raised:
        asyncio.run(run())
    assert raised.value.code == ErrorCode.URL_FETCH_FAILED
    assert raised.value.message == f"{url}: the host could not be reached"
