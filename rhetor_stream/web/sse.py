"""Response headers every event stream carries."""

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # nginx and friends buffer responses unless told not to; an event stream must not be buffered.
    "X-Accel-Buffering": "no",
}
