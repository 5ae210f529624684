"""Server-Sent Events: framing (`encoding`) kept apart from parsing (`parser`)."""
from rhetor_stream.sse.encoding import HEARTBEAT, encode_comment, encode_event, encode_json_event
from rhetor_stream.sse.parser import ServerSentEvent, SSEParser, aiter_events

__all__ = ["HEARTBEAT", "SSEParser", "ServerSentEvent", "aiter_events", "encode_comment", "encode_event",
           "encode_json_event"]
