"""The incremental parser against the WHATWG rules, across every line ending and chunk split."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rhetor_stream.sse.encoding import encode_event
from rhetor_stream.sse.parser import ServerSentEvent, SSEParser

STREAM = ("id: 1{nl}event: greet{nl}retry: 2500{nl}data: hello{nl}data:  world{nl}{nl}"
          ": a comment{nl}data:no space{nl}{nl}"
          "data{nl}{nl}"
          "id: 2{nl}event: only-id{nl}{nl}"
          "data: after{nl}unknown: field{nl}{nl}")
EXPECTED = [
    ServerSentEvent(event="greet", data="hello\n world", id="1", retry=2500),
    ServerSentEvent(event="message", data="no space", id="1"),
    ServerSentEvent(event="message", data="", id="1"),
    ServerSentEvent(event="message", data="after", id="2"),
]


def parse(*chunks: bytes) -> list[ServerSentEvent]:
    parser = SSEParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events + parser.close()


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
def test_stream_with_every_line_ending(newline: str) -> None:
    assert parse(STREAM.format(nl=newline).encode()) == EXPECTED


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
def test_every_split_position_gives_the_same_events(newline: str) -> None:
    raw = ("\ufeff" + STREAM.format(nl=newline) + f"data: 日本✓{newline}{newline}").encode()
    whole = parse(raw)
    assert whole[-1].data == "日本✓"
    for cut in range(len(raw) + 1):
        assert parse(raw[:cut], raw[cut:]) == whole, cut
    assert parse(*[raw[i:i + 1] for i in range(len(raw))]) == whole


def test_bom_is_stripped_once_at_the_start_only() -> None:
    assert parse(b"\xef\xbb\xbfdata: a\n\n")[0].data == "a"
    assert parse(b"\xef\xbb", b"\xbfdata: a\n\n")[0].data == "a"
    assert parse("data: \ufeffa\n\n".encode())[0].data == "\ufeffa"


def test_comments_reach_the_callback() -> None:
    seen: list[str] = []
    parser = SSEParser(on_comment=seen.append)
    assert parser.feed(b": ping\n\n:raw\n") == []
    assert seen == ["ping", "raw"]


def test_unterminated_last_event_is_dropped() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: complete\n\ndata: cut off") == [ServerSentEvent(data="complete")]
    assert parser.close() == []


def test_ids_persist_reset_and_nul_is_ignored() -> None:
    events = parse(b"id: 5\ndata: a\n\ndata: b\n\nid: 6\x007\ndata: c\n\nid\ndata: d\n\n")
    assert [event.id for event in events] == ["5", "5", "5", ""]


def test_retry_needs_ascii_digits() -> None:
    parser = SSEParser()
    parser.feed(b"retry: 12a\nretry: \xd9\xa3\nretry: -1\ndata: x\n\n")
    assert parser.retry is None
    parser.feed(b"retry: 900\n\n")
    assert parser.retry == 900


def test_only_cr_lf_break_lines() -> None:
    [event] = parse("data: a\u2028b\x0bc\x1cd\x85e\n\n".encode())
    assert event.data == "a\u2028b\x0bc\x1cd\x85e"


def test_invalid_utf8_is_replaced() -> None:
    [event] = parse(b"data: a\xffb\n\n")
    assert event.data == "a\ufffdb"


names = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20)
ids = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=20)
payloads = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=300, deadline=None)
@given(name=names, event_id=ids, payload=payloads, cuts=st.lists(st.integers(min_value=0), max_size=6))
def test_encode_then_parse_round_trips(name: str, event_id: str, payload: str, cuts: list[int]) -> None:
    """The invariant: name ("" reads as "message"), id as sent, payload with CR and CRLF read as LF."""
    raw = encode_event(payload, event=name, id=event_id)
    positions = sorted({cut % (len(raw) + 1) for cut in cuts})
    pieces = [raw[start:end] for start, end in zip([0, *positions], [*positions, len(raw)])]
    [event] = parse(*pieces)
    assert event.event == (name or "message")
    assert event.id == event_id
    assert event.data == payload.replace("\r\n", "\n").replace("\r", "\n")
