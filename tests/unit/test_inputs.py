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


def test_an_archive_too_large_once_unpacked_is_refused_before_inflating() -> None:
    import io
    import zipfile

    import numpy as np

    from gateway.inputs import expand_archive

    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, 100_000, dtype=np.uint8).tobytes()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(3):
            archive.writestr(f"photo{index}.jpg", noise)
    limits = ImageLimits()
    assert len(expand_archive("three.zip", buffer.getvalue(), limits, 10, 300_000)) == 3
    with pytest.raises(ApiError) as refused:
        expand_archive("three.zip", buffer.getvalue(), limits, 10, 299_999)
    assert refused.value.code == ErrorCode.FILE_TOO_LARGE and refused.value.status == 413
    assert refused.value.details == {"file": "three.zip", "bytes": 300_000, "max_bytes": 299_999}
