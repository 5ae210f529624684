"""rhetor_stream: run MCP-style tools and AI specialists, stream what happens as Server-Sent Events."""

__version__ = "0.1.0"
