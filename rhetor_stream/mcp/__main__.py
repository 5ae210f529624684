"""`python -m rhetor_stream.mcp`: serve the tools over MCP's stdio transport."""
from rhetor_stream.mcp.stdio import main

main()
