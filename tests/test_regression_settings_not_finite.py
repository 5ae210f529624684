"""Regression: `nan` and `inf` were accepted for float settings (issue 9, item 6).

`nan <= 0` is false, so `--send-timeout nan` passed the "greater than 0" check and silently switched
the send timeout off; `inf` passed every lower bound. Both are now refused, naming the flag.
"""
from __future__ import annotations

import attrs
import pytest

from rhetor_stream.settings import Settings, SettingsError

FLOAT_SETTINGS = [field.name for field in attrs.fields(Settings) if str(field.type) == "float"]


@pytest.mark.parametrize("name", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "Infinity"])
def test_a_float_flag_refuses_what_is_not_a_finite_number(name: str, value: str) -> None:
    flag = f"--{name.replace('_', '-')}"
    with pytest.raises(SettingsError, match=f"{flag} .*finite number"):
        Settings.from_sources([f"{flag}={value}"], {})


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_float_variable_refuses_it_too(value: str) -> None:
    with pytest.raises(SettingsError, match="--send-timeout \\(RHETOR_SEND_TIMEOUT\\) must be a finite"):
        Settings.from_sources([], {"RHETOR_SEND_TIMEOUT": value})


def test_finite_values_still_pass() -> None:
    settings = Settings.from_sources(["--send-timeout", "1e3", "--heartbeat", "0"], {})
    assert (settings.send_timeout, settings.heartbeat) == (1000.0, 0.0)
