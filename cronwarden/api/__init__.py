"""The local HTTP API (aiohttp): routes, handlers, problem+json errors."""
