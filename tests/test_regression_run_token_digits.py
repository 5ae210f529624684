"""Regression: a run token whose expiry had a non-ASCII digit ('²') or thousands of digits was a 500.

`str.isdigit()` accepts digits that `int()` refuses, and `int()` refuses more than 4,300 digits, so
`?token=` carried an unhandled ValueError to the error middleware. Such a token is simply malformed.
"""
from __future__ import annotations

import pytest

from rhetor_stream.security.capability import Capabilities


@pytest.mark.parametrize("expires", ["\u00b2", "1" * 5000, "\u0663" * 3])
def test_a_token_with_odd_digits_is_malformed(expires: str) -> None:
    capabilities = Capabilities(b"secret", 60)
    assert capabilities.problem("run", f"{expires}.signature") == "the run token is malformed"
