"""Who may use the server and what never leaves it: API keys, run capabilities, host and origin
checks, per-key cost limits, and the scrubbing of secrets from anything sent to a client or a log."""
