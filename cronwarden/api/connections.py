"""How many connections the API holds, and for how long: runs never pay for clients.

Every connection costs a file descriptor, and so does every run (two output pipes, its
log and index files, a pidfd) and the store. Idle or half-open connections used to
hold the daemon at its fd limit, so runs crashed with "Too many open files" and
``/health`` went unanswered. Three bounds keep connections in their place:

- **Header and idle timeout** (``IDLE_TIMEOUT``): a connection that has not delivered a
  complete request head within this time of opening, or of its last answer, is closed.
  aiohttp's keep-alive timer does exactly this (it starts when the connection opens and
  only a complete request stops it), so no timer of our own runs per request. A request
  being answered is never timed out by it: an SSE follower stays as long as it reads.
- **Body timeout** (``BODY_TIMEOUT``): a request body must arrive within this time.
- **Connection cap** (``connection_cap``): a share of the soft ``RLIMIT_NOFILE`` the
  daemon was given, the rest kept for runs and the store. At the cap a new connection
  takes the place of the longest-idle one (no request in progress); when every one
  is busy it is answered 503 and closed at once. The condition is logged at most once
  per ``LOG_EVERY`` seconds, with counts.
- **Accept batch** (``accept_batch``): asyncio accepts up to its listen backlog of
  sockets each time the listener is ready, and a socket it refuses or evicts keeps its
  descriptor for three more turns of the loop. A backlog of 128 let a flood of
  connections open 4 x 128 descriptors beyond the cap on a busy machine and hit the
  limit anyway ("socket.accept() out of system resource"). The backlog is a quarter of
  the cap, so connections never hold more than twice the cap, however fast they come;
  a client beyond the kernel's queue retries its connect.

The soft fd limit is not raised to the hard one at start-up: runs must start with the
limit the daemon was given (as cron gives them), and ``subprocess`` has no way to set a
child's limit without a ``preexec_fn``, which gives up its fast vfork path. Give the
daemon more descriptors with ``LimitNOFILE=`` in its unit instead.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable

import structlog
from aiohttp import web

from cronwarden.api.middlewares import Handler, problem
from cronwarden.config import Listen

log = structlog.get_logger("cronwarden.api")

IDLE_TIMEOUT = 10.0  # s from opening, or from the last answer, to a complete request head
BODY_TIMEOUT = 30.0  # s for a request body to arrive
RESERVED_FDS = 64  # the store's connections, listeners, the loop, logging, files being read
CONNECTION_SHARE = 4  # connections get a quarter of what is left; runs the rest
MIN_CONNECTIONS = 8
MAX_CONNECTIONS = 4096
LOG_EVERY = 60.0  # s between two logs of a full connection table

_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/problem+json\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s"
)
_FULL_BODY = (
    b'{"type":"urn:cronwarden:problem:too-many-connections",'
    b'"title":"Service Unavailable","status":503,'
    b'"detail":"cronwarden holds as many connections as its file limit allows, all busy; '
    b'retry shortly","instance":"","errors":[]}'
)
FULL_RESPONSE = _FULL % (len(_FULL_BODY), _FULL_BODY)


def connection_cap(soft_fd_limit: int) -> int:
    """How many connections to hold under ``soft_fd_limit`` (RLIM_INFINITY: the maximum).

    1024 (systemd's default) gives 240, leaving ~700 descriptors for runs (about 90
    at once) and the store; 256 gives 48.
    """
    if soft_fd_limit == resource.RLIM_INFINITY or soft_fd_limit < 0:
        return MAX_CONNECTIONS
    share = (soft_fd_limit - RESERVED_FDS) // CONNECTION_SHARE
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, share))


def accept_batch(cap: int) -> int:
    """The listen backlog, which is also how many sockets asyncio accepts at once."""
    return max(MIN_CONNECTIONS, cap // 4)


def soft_fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class _Connection(asyncio.Protocol):
    """aiohttp's protocol for one connection, counted by the gate: what the transport
    reports is passed on unchanged once the gate let the connection in."""

    __slots__ = ("_inner", "admitted", "busy", "gate", "transport")

    def __init__(self, gate: ConnectionGate, inner: asyncio.Protocol) -> None:
        self.gate = gate
        self._inner = inner
        self.transport: asyncio.BaseTransport | None = None
        self.admitted = False
        self.busy = 0  # requests in progress (pipelined requests are answered in turn)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.admitted = self.gate.admit(self)
        if self.admitted:
            self._inner.connection_made(transport)
        else:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(FULL_RESPONSE)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.admitted:
            self.gate.release(self)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.admitted:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self.admitted else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class ConnectionGate:
    """The open connections, least recently active first, and the cap they stay under."""

    def __init__(self, cap: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.cap = cap
        self._clock = clock
        self._open: dict[_Connection, None] = {}  # insertion order: least recently active first
        self._refused = 0
        self._evicted = 0
        self._logged_at: float | None = None

    @property
    def open(self) -> int:
        return len(self._open)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` whose connections this gate counts."""
        return lambda: _Connection(self, factory())

    def admit(self, connection: _Connection) -> bool:
        if len(self._open) >= self.cap and not self._evict_idle():
            self._refused += 1
            self._log_full()
            return False
        self._open[connection] = None
        return True

    def release(self, connection: _Connection) -> None:
        self._open.pop(connection, None)

    def started(self, connection: _Connection) -> None:
        connection.busy += 1

    def finished(self, connection: _Connection) -> None:
        connection.busy -= 1
        if connection in self._open:  # now the most recently active
            del self._open[connection]
            self._open[connection] = None

    def _evict_idle(self) -> bool:
        victim = next((c for c in self._open if not c.busy), None)
        if victim is None:
            return False
        del self._open[victim]
        if victim.transport is not None:
            victim.transport.close()
        self._evicted += 1
        self._log_full()
        return True

    def _log_full(self) -> None:
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < LOG_EVERY:
            return
        self._logged_at = now
        log.warning(
            "api.connections_full",
            cap=self.cap,
            idle_closed=self._evicted,
            refused=self._refused,
            within_s=LOG_EVERY,
            hint="each connection costs a file descriptor; raise LimitNOFILE for more",
        )
        self._evicted = self._refused = 0


@web.middleware
async def connection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Marks the connection busy while its request is answered (busy ones are never
    closed to make room), and reads the body under ``BODY_TIMEOUT``."""
    transport = request.transport
    connection = transport.get_protocol() if transport is not None else None
    if not isinstance(connection, _Connection):
        return await _with_body_deadline(request, handler)
    gate = connection.gate
    gate.started(connection)
    try:
        return await _with_body_deadline(request, handler)
    finally:
        gate.finished(connection)


async def _with_body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.body_exists:
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                await request.read()  # kept by aiohttp: the handler's read() gets it
        except TimeoutError:
            response = problem(
                request,
                408,
                "request-timeout",
                f"the request body did not arrive within {BODY_TIMEOUT:g} s",
            )
            response.force_close()
            return response
    return await handler(request)


class GatedSite(web.BaseSite):
    """aiohttp's TCP or unix site, its connections counted by ``gate``."""

    def __init__(self, runner: web.BaseRunner, listen: Listen, gate: ConnectionGate) -> None:
        super().__init__(runner)
        self._listen = listen
        self.gate = gate

    @property
    def name(self) -> str:
        return f"http://{self._listen}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        factory = self.gate.wrap(server)
        backlog = accept_batch(self.gate.cap)
        loop = asyncio.get_running_loop()
        if self._listen.unix_path is not None:
            self._server = await loop.create_unix_server(
                factory, str(self._listen.unix_path), backlog=backlog
            )
        else:
            assert self._listen.port is not None
            self._server = await loop.create_server(
                factory,
                self._listen.host,
                self._listen.port,
                backlog=backlog,
                reuse_address=True,
            )
