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

Cost: the text may come from anyone (a request body, a model printing "......" a token at a time),
and all of this runs on the event loop, so every character is looked at a bounded number of times
however the text is split. Hence the scanners below instead of regular expressions searched from the
start of the chunk: each keeps where it stopped and what it was reading (a run of terminators, of
closers, of whitespace) and goes on from there with the next delta; a cut keeps what was read past
it when that does not depend on where the chunk starts. Nothing looks further ahead than
`max_chars` past the chunk's start, which is as far as a boundary can matter.
"""
from __future__ import annotations

import enum
import re
from collections.abc import Iterator

_LATIN_TERMINATORS = ".!?…"
_CJK_TERMINATORS = "。！？"
_TERMINATORS = frozenset(_LATIN_TERMINATORS + _CJK_TERMINATORS)
_CLOSERS = "\"'”’)]}»」』）"
_OPENERS = "(\"'“‘["


def _run_of(characters: str) -> re.Pattern[str]:
    return re.compile(f"[{re.escape(characters)}]*")


_TERMINATOR = re.compile(f"[{re.escape(_LATIN_TERMINATORS + _CJK_TERMINATORS)}]")
_LATIN_RUN = _run_of(_LATIN_TERMINATORS)
_CJK_RUN = _run_of(_CJK_TERMINATORS)
_CLOSER_RUN = _run_of(_CLOSERS)
_SPACE_RUN = re.compile(r"\s*")
_SPACE = re.compile(r"\s")
_TEXT = re.compile(r"\S")
_LAST_SPACE = re.compile(r".*\s", re.DOTALL)
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


class _Scanner:
    """Finds the first boundary of the current chunk, resuming where the previous call stopped.

    Positions are indices into the chunker's buffer; `_POSITIONS` names the fields that hold one, so
    that dropping handed-out text from the buffer can move them all.
    """

    _POSITIONS: tuple[str, ...] = ()

    def find(self, buffer: str, end: int) -> int | None:
        """Index of the first character after the chunk's first boundary, reading `buffer[:end]`
        only; None while no boundary is proven there."""
        raise NotImplementedError

    def restart(self, buffer: str, cut: int) -> None:
        """The chunk now starts at `cut`."""
        raise NotImplementedError

    def shift(self, offset: int) -> None:
        for name in self._POSITIONS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value - offset)


class _Gaps(_Scanner):
    """Boundaries after a whitespace gap that follows text and holds at least `breaks` line breaks
    (CRLF is one): every gap for words, a blank line for paragraphs."""

    _POSITIONS = ("_pos", "_gap", "_reach", "_found")

    def __init__(self, breaks: int) -> None:
        self._needed = breaks
        self._pos = 0  # the next character to read when looking for text or for a gap
        self._seen_text = False  # some text of this chunk lies before _pos
        self._gap: int | None = None  # start of the gap being read
        self._reach = 0  # the gap is read up to here
        self._found: int | None = None

    def find(self, buffer: str, end: int) -> int | None:
        if self._found is not None:
            return self._found
        while True:
            if self._gap is None:
                if not self._seen_text:
                    text = _TEXT.search(buffer, self._pos, end)
                    if text is None:
                        self._pos = end
                        return None
                    self._pos = text.end()
                    self._seen_text = True
                space = _SPACE.search(buffer, self._pos, end)
                if space is None:
                    self._pos = end
                    return None
                self._gap = self._reach = space.start()
            reach = self._reach = _SPACE_RUN.match(buffer, self._reach, end).end()  # type: ignore[union-attr]
            if reach == end:
                return None  # the gap may go on
            # Counted once the gap is whole: a CRLF is then never read as two breaks.
            if not self._needed or _line_breaks(buffer, self._gap, reach) >= self._needed:
                self._found = reach
                return reach
            self._gap = None
            self._pos = reach + 1  # buffer[reach] is text

    def restart(self, buffer: str, cut: int) -> None:
        # What was read from the text before a gap on only depends on that text.
        anchor = self._pos - 1 if self._gap is None else self._gap - 1
        if self._seen_text and anchor >= cut:
            return
        self._pos = cut
        self._seen_text = False
        self._gap = self._found = None


def _line_breaks(buffer: str, start: int, end: int) -> int:
    return buffer.count("\n", start, end) + buffer.count("\r", start, end) - buffer.count("\r\n", start, end)


class _Sentences(_Scanner):
    """Sentence ends: a run of one kind of terminator, closers, whitespace, then the deciding character."""

    _POSITIONS = ("_pos", "_term", "_reach", "_term_end", "_close_end", "_found", "_word_start", "_word_scan")

    def __init__(self) -> None:
        self._pos = 0  # where to look for the next terminator
        self._term: int | None = None  # start of the candidate being read: its terminator run
        self._stage = 0  # 0: reading the terminator run, 1: the closers, 2: the whitespace
        self._reach = 0
        self._term_end = 0
        self._close_end = 0
        self._found: int | None = None
        self._word_start = 0  # the word before _word_scan starts here (or at the chunk's start)
        self._word_scan = 0

    def find(self, buffer: str, end: int) -> int | None:
        if self._found is not None:
            return self._found
        while True:
            if self._term is None:
                terminator = _TERMINATOR.search(buffer, self._pos, end)
                if terminator is None:
                    self._pos = end
                    return None
                self._term = self._reach = terminator.start()
                self._stage = 0
            term = self._term
            while self._stage < 3:
                if self._stage == 0:
                    run = _LATIN_RUN if buffer[term] in _LATIN_TERMINATORS else _CJK_RUN
                else:
                    run = _CLOSER_RUN if self._stage == 1 else _SPACE_RUN
                self._reach = run.match(buffer, self._reach, end).end()  # type: ignore[union-attr]
                if self._reach == end:
                    return None  # the run may go on
                if self._stage == 0:
                    self._term_end = self._reach
                    if buffer[self._reach] in _TERMINATORS:
                        break  # the other kind of terminator follows: nothing ends here
                elif self._stage == 1:
                    self._close_end = self._reach
                self._stage += 1
            else:
                if self._ends_sentence(buffer):
                    self._found = self._reach
                    return self._found
                self._pos = self._close_end
                self._term = None
                continue
            self._pos = self._term_end
            self._term = None

    def _ends_sentence(self, buffer: str) -> bool:
        term = self._term
        assert term is not None
        if buffer[self._term_end - 1] in _CJK_TERMINATORS:
            return True
        if self._close_end == self._reach:
            return False  # "3.14", "example.com", "v1.2"
        following = buffer[self._reach]
        if following.islower():
            return False  # "e.g. apples", "Wait... what"
        if self._term_end - term == 1 and buffer[term] == ".":
            word = self._word_before(buffer, term).lstrip(_OPENERS).lower()
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                return False
            if word in _BEFORE_NUMBERS and following.isdigit():
                return False
        return True

    def _word_before(self, buffer: str, index: int) -> str:
        """The non-space run before `index`, within the chunk. Candidates come in order, so the
        search for its start only reads what it has not read before."""
        if self._word_scan < index:
            space = _LAST_SPACE.match(buffer, self._word_scan, index)
            if space is not None:
                self._word_start = space.end()
            self._word_scan = index
        return buffer[self._word_start:index]

    def restart(self, buffer: str, cut: int) -> None:
        # After whitespace, where the chunk starts changes nothing for what lies past the cut.
        floor = self._pos if self._term is None else self._term
        if floor >= cut and buffer[cut - 1].isspace():
            if self._word_scan < cut:
                self._word_start = self._word_scan = cut
            return
        self._pos = self._word_start = self._word_scan = cut
        self._term = self._found = None


_COMPACT_AT = 512


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
        # The text not handed out yet is `_buffer[_start:]`, never more than max_chars between feeds.
        # Handed-out text is cut off the front only now and then (`_COMPACT_AT`): cutting moves every
        # scanner's positions, which for one-word deltas would cost as much as the scanning itself. Not
        # rarely either: appending a delta may copy the whole buffer (a str is resized to its exact
        # size), so a long handed-out head would make one-character deltas cost more per character.
        self._buffer = ""
        self._start = 0
        self._reset()

    def _reset(self) -> None:
        self._paragraphs = _Gaps(2) if self.mode in (ChunkMode.SENTENCE, ChunkMode.PARAGRAPH) else None
        self._words = _Gaps(0) if self.mode is ChunkMode.WORD else None
        self._sentences = _Sentences() if self.mode is ChunkMode.SENTENCE else None
        self._scanners: list[_Scanner] = [scanner for scanner in (self._paragraphs, self._words, self._sentences)
                                          if scanner is not None]
        # Called for every delta: in word mode, straight to the one scanner.
        self._next_boundary = self._words.find if self._words is not None else self._first_boundary

    def feed(self, delta: str) -> list[str]:
        if not delta:
            return []
        if self.mode is ChunkMode.NONE:
            return [delta]
        # With the only reference in a local, CPython can append in place rather than copy the
        # pending text for every delta.
        buffer, self._buffer = self._buffer, ""
        buffer += delta
        self._buffer = buffer
        chunks: list[str] = []
        start = self._start
        max_chars = self.max_chars
        length = len(buffer)
        while True:
            cut = self._next_boundary(buffer, min(length, start + max_chars + 1))
            if cut is None:
                # Only once the text reaches past max_chars is it certain that no natural boundary
                # within reach is still waiting for its deciding character.
                if length - start <= max_chars:
                    break
                cut = self._valve_cut(buffer, start)
            chunks.append(buffer[start:cut])
            start = cut
            for scanner in self._scanners:
                scanner.restart(buffer, cut)
        if start >= _COMPACT_AT:
            self._buffer = buffer[start:]
            for scanner in self._scanners:
                scanner.shift(start)
            start = 0
        self._start = start
        return chunks

    def flush(self) -> list[str]:
        rest = self._buffer[self._start:]
        self._buffer = ""
        self._start = 0
        self._reset()
        return [rest] if rest else []

    def _first_boundary(self, buffer: str, end: int) -> int | None:
        """Index just after the first proven boundary of the current chunk in `buffer[:end]`, or None
        (sentence and paragraph modes; word mode asks its scanner directly)."""
        assert self._paragraphs is not None
        paragraph = self._paragraphs.find(buffer, end)
        if self._sentences is None:
            return paragraph
        # A sentence that starts before the blank line ends by it at the latest.
        sentence = self._sentences.find(buffer, end if paragraph is None else paragraph + 1)
        if sentence is None or (paragraph is not None and paragraph < sentence):
            return paragraph
        return sentence

    def _valve_cut(self, buffer: str, start: int) -> int:
        """Force a cut in a runaway chunk: after the last whitespace in reach, else at max_chars."""
        end = start + self.max_chars
        last_space = max(buffer.rfind(" ", start, end), buffer.rfind("\n", start, end),
                         buffer.rfind("\t", start, end))
        return last_space + 1 if last_space > start else end


def chunk_text(text: str, mode: ChunkMode | str = ChunkMode.SENTENCE) -> list[str]:
    """All chunks of a complete text."""
    chunker = Chunker(mode)
    return chunker.feed(text) + chunker.flush()


# Feeding a chunker costs time linear in the text, but a single megabyte-long delta would still hold
# the event loop for a second: whoever feeds text they did not choose feeds it in pieces this long.
PIECE = 512


def pieces(delta: str) -> Iterator[str]:
    """`delta` in pieces of at most PIECE characters (the chunks come out the same)."""
    if len(delta) <= PIECE:
        yield delta
        return
    for offset in range(0, len(delta), PIECE):
        yield delta[offset:offset + PIECE]
