"""The HTTP API's path prefix, in a module of its own: the server's routes and the standalone client
(`rhetor_stream.client`, which imports nothing of the server) share one definition."""

API = "/api/mcp/v2"
