"""The app factory: the real app, used by the daemon and by the tests alike."""

from __future__ import annotations

from aiohttp import web

from cronwarden.api.compression import compression_middleware
from cronwarden.api.connections import connection_middleware
from cronwarden.api.keys import SERVICES, Services
from cronwarden.api.middlewares import problem_middleware
from cronwarden.api.origin import HOST_GUARD, HostGuard, learn_machine_names, origin_middleware
from cronwarden.api.routes import add_routes


def create_app(services: Services) -> web.Application:
    # The Host and Origin checks come first: a page that is refused learns nothing,
    # not even whether a token would be needed. The body is read (under its deadline)
    # once the request is known to be welcome.
    app = web.Application(
        middlewares=[
            origin_middleware,
            compression_middleware,
            problem_middleware,
            connection_middleware,
        ],
        client_max_size=services.live.current.daemon.max_body,
    )
    app[SERVICES] = services
    app[HOST_GUARD] = HostGuard()
    app.cleanup_ctx.append(learn_machine_names)
    add_routes(app)
    return app
