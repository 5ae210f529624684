"""Tools: the registry and decorators users write tools with, and the built-in diagnostic tools."""
from rhetor_stream.tools.registry import (
    Alias,
    ArgumentError,
    Bounds,
    Known,
    StreamCallback,
    Tool,
    ToolContext,
    ToolError,
    ToolRegistry,
    mcp_tool,
    streaming_tool,
)

__all__ = [
    "Alias", "ArgumentError", "Bounds", "Known", "StreamCallback", "Tool", "ToolContext", "ToolError", "ToolRegistry",
    "mcp_tool", "streaming_tool",
]
