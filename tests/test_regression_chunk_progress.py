"""Regression: StreamText's chunk `progress` counted the text read so far, which runs one token ahead
of what was sent (84.6% on the first of two chunks). It is now the share of the text sent."""
from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.conftest import post_stream


async def test_progress_is_the_share_of_the_text_sent(client: TestClient) -> None:
    text = "One sentence. Another one!"
    events = await post_stream(client, "StreamText", {"text": text, "delay_ms": 0}, chunk_size="sentence")
    chunks = [event.json()["content"] for event in events if event.event == "chunk"]
    assert [chunk["content"] for chunk in chunks] == ["One sentence. ", "Another one!"]
    assert [chunk["progress"] for chunk in chunks] == [round(100 * 14 / len(text), 1), 100.0]
