"""The app factory: the real app, used by the daemon and by the tests alike."""

from __future__ import annotations

from aiohttp import web

from cronwarden.api.keys import SERVICES, Services
from cronwarden.api.middlewares import problem_middleware
from cronwarden.api.routes import add_routes


def create_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[problem_middleware],
        client_max_size=services.live.current.daemon.max_body,
    )
    app[SERVICES] = services
    add_routes(app)
    return app
