"""The HTTP side: the app factory, handlers, request parsing and error responses."""
