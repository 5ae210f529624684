"""The scrubber that keeps secrets out of events, JSON errors and logs (rhetor_stream.security.secrets)."""
from __future__ import annotations

import pytest

from rhetor_stream.security.secrets import Scrubber, credential_secrets, public_url, url_credentials

KEY = "xk-live-Q7wZp2XvL9mKa4"


def leaks(text: str, secret: str) -> list[str]:
    """Every suffix of `secret` longer than 4 characters that `text` contains."""
    return [secret[start:] for start in range(len(secret) - 4) if secret[start:] in text]


@pytest.mark.parametrize("text", [
    f"Incorrect API key provided: {KEY}.",
    f"key ending in {KEY[-9:]}",  # how APIs mask a key, and what a cut leaves
    f"{KEY}{KEY}",
    f'{{"error": "bad key {KEY[-5:]}"}}',
])
def test_configured_keys_and_their_suffixes(text: str) -> None:
    scrubbed = Scrubber([KEY])(text)
    assert leaks(scrubbed, KEY) == [] and "***" in scrubbed


def test_four_characters_stay() -> None:
    assert Scrubber([KEY])(f"sk-...{KEY[-4:]}") == f"sk-...{KEY[-4:]}"


@pytest.mark.parametrize("text, expected", [
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "Authorization: Bearer ***"),
    ("authorization: basic YWxpY2U6c2VjcmV0", "authorization: basic ***"),
    ("Incorrect API key provided: sk-proj-AbCdEfGh1234_5678.", "Incorrect API key provided: sk-***."),
    ("key sk-ant-api03-XyZ0123456789-abc here", "key sk-*** here"),
    ("cannot reach http://user:s3cret@host:8080/v1", "cannot reach http://***@host:8080/v1"),
    ('{"url": "https://token@example.com/x"}', '{"url": "https://***@example.com/x"}'),
    ("nothing secret: Basic auth, sk-1, mail user@example.com",
     "nothing secret: Basic auth, sk-1, mail user@example.com"),
])
def test_credential_shapes(text: str, expected: str) -> None:
    assert Scrubber()(text) == expected


def test_short_secrets_are_not_literals() -> None:
    assert Scrubber(["abcd", ""])("abcd efgh") == "abcd efgh"


@pytest.mark.parametrize("url, credentials, public", [
    ("http://alice:pw%40x@host:1/v1", ("alice", "pw@x"), "http://host:1/v1"),
    ("http://alice@host", ("alice", ""), "http://host"),
    ("https://api.openai.com/v1", None, "https://api.openai.com/v1"),
])
def test_urls(url: str, credentials: tuple[str, str] | None, public: str) -> None:
    assert url_credentials(url) == credentials and public_url(url) == public


def test_basic_token_is_a_secret() -> None:
    assert credential_secrets("alice", "secret") == ("secret", "YWxpY2U6c2VjcmV0")
    assert credential_secrets("alice", "") == ("YWxpY2U6",)


def test_overlapping_matches_become_one_mark() -> None:
    assert Scrubber([KEY, "x" * 12])(f"a {KEY}{KEY[3:]} b {'x' * 30} c") == "a *** b *** c"
