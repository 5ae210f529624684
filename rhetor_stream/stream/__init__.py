"""The stream machinery: bounded channels, runs of tools, progress, and the supervisor of open streams."""
