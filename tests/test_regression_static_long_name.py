"""Regression: a long file name under /static was a 500 (found by the fuzzer).

aiohttp's static route built a path from the URL and asked the file system about it; a name over
255 characters failed with ENAMETOOLONG, which it did not expect, and the error middleware answered
500 with a traceback. Static files are now found by name among the files of `static/`, so a
client's path never reaches the file system: anything else is a 404.
"""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient


@pytest.mark.parametrize("name", ["x" * 300, "x" * 5000, "..%2Fpyproject.toml", "%00", "nope", "a%2F" * 100])
async def test_a_name_that_is_no_static_file_is_a_404(client: TestClient, name: str) -> None:
    response = await client.get(f"/static/{name}")
    assert response.status == 404, await response.text()
    assert (await response.json())["code"] == "not_found"


async def test_the_page_is_still_there(client: TestClient) -> None:
    response = await client.get("/static/streaming_client.html")
    assert response.status == 200 and "<html" in (await response.text()).lower()
