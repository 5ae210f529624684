"""The chunker: meaningful chunks that always join back to the input, however it was split."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rhetor_stream.chunking import Chunker, ChunkMode, chunk_text


@pytest.mark.parametrize("text, expected", [
    ("Dr. Smith arrived at 3.14 p.m. He left.", ["Dr. Smith arrived at 3.14 p.m. ", "He left."]),
    ("Wait... what? Yes!", ["Wait... what? ", "Yes!"]),
    ('He said "Stop." Then left.', ['He said "Stop." ', "Then left."]),
    ("Use e.g. apples. Or pears.", ["Use e.g. apples. ", "Or pears."]),
    ("价格是3.5元。很好！真的吗？", ["价格是3.5元。", "很好！", "真的吗？"]),
    ("「走吧。」他说。", ["「走吧。」", "他说。"]),
    ("See example.com. Done.", ["See example.com. ", "Done."]),
    ("J. R. R. Tolkien wrote it. No. 5 is next.", ["J. R. R. Tolkien wrote it. ", "No. 5 is next."]),
    ("It costs 3.50 (roughly). Fine?  Yes.", ["It costs 3.50 (roughly). ", "Fine?  ", "Yes."]),
    ("Heading\n\nBody text without a stop", ["Heading\n\n", "Body text without a stop"]),
    ("One.\r\n\r\nTwo.", ["One.\r\n\r\n", "Two."]),
    ("Ends with space. ", ["Ends with space. "]),
    ("We met on Jan. 3. Then vol. 2 came. Back in Jan. Maybe.",
     ["We met on Jan. 3. ", "Then vol. 2 came. ", "Back in Jan. ", "Maybe."]),
])
def test_sentences(text: str, expected: list[str]) -> None:
    assert chunk_text(text, "sentence") == expected


def test_paragraphs_and_words() -> None:
    text = "First para. Still first.\n\nSecond para.\n \n\nThird"
    assert chunk_text(text, ChunkMode.PARAGRAPH) == ["First para. Still first.\n\n", "Second para.\n \n\n", "Third"]
    assert chunk_text("Hello, world  again\n", "word") == ["Hello, ", "world  ", "again\n"]
    assert chunk_text("  lead", "word") == ["  lead"]


def test_none_passes_deltas_through() -> None:
    chunker = Chunker("none")
    assert chunker.feed("ab") == ["ab"] and chunker.feed("") == [] and chunker.flush() == []


def test_waits_until_the_next_character_decides() -> None:
    chunker = Chunker()
    assert chunker.feed("Call Dr.") == []
    assert chunker.feed(" ") == []
    assert chunker.feed("Who. ") == []  # "Dr." + capital: not a boundary; "Who. " is undecided
    assert chunker.feed("Next") == ["Call Dr. Who. "]
    assert chunker.flush() == ["Next"]


def test_runaway_text_is_cut_at_max_chars() -> None:
    text = "word " * 100
    chunks = Chunker(max_chars=42).feed(text)
    assert all(len(chunk) <= 42 for chunk in chunks) and chunks[0].endswith(" ")
    assert Chunker(max_chars=10).feed("x" * 25) == ["x" * 10, "x" * 10]


def test_bad_mode_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="sentence, paragraph, word, none"):
        Chunker("page")


alphabet = st.sampled_from([*"ab .!?…。\n\r\t\"')Dr3eg", " e.g. ", " Dr. ", "\r\n", "\n\n", "..."])
texts = st.lists(alphabet, max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=texts, cuts=st.lists(st.integers(min_value=0), max_size=10),
       mode=st.sampled_from(["sentence", "paragraph", "word", "none"]),
       max_chars=st.sampled_from([1, 3, 7, 2000]))
def test_chunks_join_back_and_do_not_depend_on_the_split(text: str, cuts: list[int], mode: str,
                                                         max_chars: int) -> None:
    positions = sorted({cut % (len(text) + 1) for cut in cuts})
    deltas = [text[start:end] for start, end in zip([0, *positions], [*positions, len(text)])]
    chunker = Chunker(mode, max_chars=max_chars)
    chunks = [chunk for delta in deltas for chunk in chunker.feed(delta)] + chunker.flush()
    assert "".join(chunks) == text
    assert all(chunks)
    if mode != "none":
        whole = Chunker(mode, max_chars=max_chars)
        assert chunks == whole.feed(text) + whole.flush()
