"""Peers serving the bench workload idiomatically with other SSE libraries, and the raw floor."""
