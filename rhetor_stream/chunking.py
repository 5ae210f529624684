"""Cutting a stream of text deltas (LLM tokens) into chunks a reader can use.

A boundary is only emitted once the text after it proves it right: "Dr." may be a sentence end or
a title, "3." may become "3.14", and a whitespace run may still grow. So the chunker waits for the
first non-space character after a candidate before deciding, which makes the chunks identical however
the input was split into deltas (a property the tests check), and `flush` hands out the rest.

Sentence rules: `.`, `!`, `?`, `…` (with any closing quotes or brackets) followed by whitespace end a
sentence unless the next word starts in lowercase ("e.g. apples", "wait... what") or the dot ends a
known abbreviation or an initial ("Dr. Smith", "J. R. R. Tolkien", "No. 5", "Jan. 3"). CJK
terminators end a sentence without needing a space. A blank line ends any chunk. The whitespace
after a boundary belongs to the chunk that ends, so chunks always join back to the exact input.
"""
from __future__ import annotations

import enum
import re

_CLOSERS = "\"'”’)\\]}»」』）"
# The lookaheads keep the terminator and closer runs whole: backtracking must not turn "。。" into a
# boundary between its two halves (that would make the result depend on how the input was split).
_SENTENCE = re.compile(rf"(?P<term>[.!?…]+|[。！？]+)(?![.!?…。！？])(?P<close>[{_CLOSERS}]*)(?![{_CLOSERS}])"
                       r"(?P<ws>\s*)(?P<next>\S)")
# A blank line after some text; CRLF is one line break, never a CR and an LF.
_PARAGRAPH = re.compile(r"(?<=\S)(?:[^\S\r\n]*(?:\r\n|\r(?!\n)|\n)){2,}\s*(?P<next>\S)")
_WORD = re.compile(r"(?<=\S)\s+(?P<next>\S)")
_TRAILING = re.compile(rf"[.!?…。！？{_CLOSERS}\s]*\Z")
_WORD_BEFORE = re.compile(r"(\S*)\Z")
_CJK_TERMINATORS = frozenset("。！？")
# Words whose trailing dot is almost never a sentence end when a capitalised word follows.
_ABBREVIATIONS = frozenset({"dr", "mr", "mrs", "ms", "prof", "st", "vs", "e.g", "i.e", "cf", "fig",
                            "approx", "mt", "sr", "jr", "gen", "sgt", "capt", "lt", "col", "rev"})
# Abbreviations only when a number follows ("No. 5", "Jan. 3", "vol. 2"): "in Jan. Then" still ends.
_BEFORE_NUMBERS = frozenset({"no", "vol", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
                             "oct", "nov", "dec"})


class ChunkMode(str, enum.Enum):
    SENTENCE = "sentence"
    PARAGRAPH = "paragraph"
    WORD = "word"
    NONE = "none"


class Chunker:
    """Feed deltas, receive complete chunks; `flush` at the end returns the remainder."""

    def __init__(self, mode: ChunkMode | str = ChunkMode.SENTENCE, *, max_chars: int = 2000) -> None:
        try:
            self.mode = ChunkMode(mode)
        except ValueError:
            valid = ", ".join(item.value for item in ChunkMode)
            raise ValueError(f"unknown chunk mode {mode!r}; use one of {valid}") from None
        if max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        self.max_chars = max_chars
        self._buffer = ""
        self._scan = 0  # no boundary can start before this index of the buffer

    def feed(self, delta: str) -> list[str]:
        if not delta:
            return []
        if self.mode is ChunkMode.NONE:
            return [delta]
        self._buffer += delta
        chunks: list[str] = []
        while True:
            cut = self._next_boundary()
            if cut is None or cut > self.max_chars:
                # Only once the text reaches past max_chars is it certain that no natural boundary
                # within reach is still waiting for its deciding character.
                if cut is None and len(self._buffer) <= self.max_chars:
                    break
                cut = self._valve_cut()
            chunks.append(self._buffer[:cut])
            self._buffer = self._buffer[cut:]
            self._scan = 0
        trailing = _TRAILING.search(self._buffer, self._scan)
        self._scan = trailing.start() if trailing else len(self._buffer)
        return chunks

    def flush(self) -> list[str]:
        rest, self._buffer, self._scan = self._buffer, "", 0
        return [rest] if rest else []

    def _next_boundary(self) -> int | None:
        """Index just after the first proven boundary in the buffer, or None if none is proven yet."""
        buffer = self._buffer
        if self.mode is ChunkMode.WORD:
            match = _WORD.search(buffer, max(self._scan, 1))
            return match.start("next") if match else None
        paragraph = _PARAGRAPH.search(buffer, self._scan)
        cut = paragraph.start("next") if paragraph else None
        if self.mode is ChunkMode.PARAGRAPH:
            return cut
        position = self._scan
        while (match := _SENTENCE.search(buffer, position)) is not None:
            if cut is not None and match.start() >= cut:
                break
            if self._ends_sentence(match):
                return match.start("next")
            position = match.end("close")
        return cut

    def _ends_sentence(self, match: re.Match[str]) -> bool:
        term = match.group("term")
        if term[-1] in _CJK_TERMINATORS:
            return True
        if not match.group("ws"):
            return False  # "3.14", "example.com", "v1.2"
        following = match.group("next")
        if following.islower():
            return False  # "e.g. apples", "Wait... what"
        if term == ".":
            word = _WORD_BEFORE.search(self._buffer, 0, match.start()).group(1)  # type: ignore[union-attr]
            word = word.lstrip("(\"'“‘[").lower()
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                return False
            if word in _BEFORE_NUMBERS and following.isdigit():
                return False
        return True

    def _valve_cut(self) -> int:
        """Force a cut in a runaway chunk: after the last whitespace in reach, else at max_chars."""
        window = self._buffer[:self.max_chars]
        last_space = max(window.rfind(" "), window.rfind("\n"), window.rfind("\t"))
        return last_space + 1 if last_space > 0 else self.max_chars


def chunk_text(text: str, mode: ChunkMode | str = ChunkMode.SENTENCE) -> list[str]:
    """All chunks of a complete text."""
    chunker = Chunker(mode)
    return chunker.feed(text) + chunker.flush()
