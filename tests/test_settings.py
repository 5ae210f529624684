"""Settings: flags beat variables beat defaults; bad values are named, never silently accepted."""
from __future__ import annotations

import pytest

from rhetor_stream.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_sources([], {})
    assert (settings.host, settings.port, settings.heartbeat, settings.send_timeout) == ("127.0.0.1", 8003,
                                                                                        15.0, 30.0)
    assert settings.max_body_bytes == 1024 * 1024 and settings.provider == "simulated"


def test_flag_beats_variable_beats_default() -> None:
    environ = {"RHETOR_PORT": "9000", "RHETOR_HEARTBEAT": "0", "RHETOR_CORS_ORIGIN": "http://a, http://b"}
    settings = Settings.from_sources(["--port", "9100"], environ)
    assert settings.port == 9100 and settings.heartbeat == 0
    assert settings.cors_origin == ("http://a", "http://b")
    settings = Settings.from_sources(["--cors-origin", "http://c", "--cors-origin", "http://d"], environ)
    assert settings.cors_origin == ("http://c", "http://d")


def test_provider_variables_and_secrets_stay_out_of_repr() -> None:
    settings = Settings.from_sources([], {"OPENAI_API_KEY": "sk-secret", "OLLAMA_HOST": "http://h:1"})
    assert settings.openai_api_key == "sk-secret" and settings.ollama_host == "http://h:1"
    assert "sk-secret" not in repr(settings)


@pytest.mark.parametrize("argv, environ, message", [
    (["--port", "70000"], {}, "--port (RHETOR_PORT) must be a port number"),
    ([], {"RHETOR_PORT": "eighty"}, "RHETOR_PORT must be a number"),
    (["--send-timeout", "0"], {}, "--send-timeout (RHETOR_SEND_TIMEOUT) must be greater than 0"),
    (["--heartbeat", "-1"], {}, "--heartbeat (RHETOR_HEARTBEAT) must be 0 or more"),
    ([], {"RHETOR_LOG_LEVEL": "loud"}, "--log-level (RHETOR_LOG_LEVEL) must be one of"),
    ([], {"RHETOR_PROVIDER": "magic"}, "--provider (RHETOR_PROVIDER) must be one of"),
])
def test_bad_values_are_named(argv: list[str], environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_sources(argv, environ)
