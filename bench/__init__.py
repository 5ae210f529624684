"""`make bench`: rhetor_stream against its peers and the raw aiohttp floor, measured in one run."""
