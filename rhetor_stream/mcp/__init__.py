"""The Model Context Protocol: our tools served to MCP clients over the Streamable HTTP transport.

`protocol` is JSON-RPC and the methods that need no run, `stream` turns a run's events into MCP
messages and SSE frames, `sessions` issues and checks session ids, and `http` is the `/mcp` endpoint
on the aiohttp app. The layer sits above `web` (it reuses its run following and security checks);
only the app factory sits above it.
"""
