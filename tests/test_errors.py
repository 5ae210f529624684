"""The one error vocabulary: every family is a RhetorError with its code and status, and an error says
the same fields as a JSON error (before a stream) and as an `error` event (once it runs)."""
from __future__ import annotations

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request

from rhetor_stream.errors import RhetorError
from rhetor_stream.providers.base import UpstreamError
from rhetor_stream.runs.store import EventsExpired, StoreMisconfigured, StoreUnavailable
from rhetor_stream.stream.frames import error_frames
from rhetor_stream.tools import ArgumentError, ToolError
from rhetor_stream.web.errors import ApiError, http_error


@pytest.mark.parametrize(("error", "code", "status"), [
    (ToolError("no"), "tool_error", 500),
    (ArgumentError("seconds", "must be at least 0"), "invalid_arguments", 400),
    (UpstreamError("down", code="upstream_unavailable"), "upstream_unavailable", 502),
    (StoreUnavailable("cannot reach it"), "event_store_unavailable", 503),
    (StoreMisconfigured("refused the credentials"), "event_store_misconfigured", 503),
    (EventsExpired("r", 7), "events_expired", 410),
    (ApiError(404, "unknown_run", "no run"), "unknown_run", 404),
])
def test_every_family_is_a_rhetor_error_with_its_code_and_status(error: RhetorError, code: str, status: int) -> None:
    assert isinstance(error, RhetorError) and (error.code, error.status) == (code, status)


def test_only_an_error_a_retry_can_fix_advises_one() -> None:
    assert StoreUnavailable("cannot reach it").public_message == "cannot reach it; try again shortly"
    assert StoreMisconfigured("refused the credentials").public_message == "refused the credentials"
    assert str(StoreUnavailable("cannot reach it")) == "cannot reach it"  # (what the log says)


def test_a_json_error_and_an_error_event_carry_the_same_fields() -> None:
    error = ArgumentError("seconds", "must be at least 0")
    response = http_error(make_mocked_request("POST", "/x"), error)
    body = orjson.loads(response.body)  # type: ignore[arg-type]
    (event, data), (last, ending) = error_frames(error, tool_name="Wait")
    assert response.status == 400 and event == "error" and last == "disconnect" and ending["reason"] == "error"
    assert body == {"error": "argument 'seconds': must be at least 0", "code": "invalid_arguments",
                    "argument": "seconds"}
    assert {key: data[key] for key in body} == body and data["tool_name"] == "Wait"
