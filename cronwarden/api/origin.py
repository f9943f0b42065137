"""What a web page may ask of the daemon: DNS rebinding and cross-site requests refused.

The API listens on loopback without tokens by default, and every browser on the
machine can reach loopback. Two things keep a web page from driving it:

- **Host check** (every TCP request): a page that rebinds its own name to 127.0.0.1
  talks to the daemon as ``Host: evil.example``, and its same-origin policy then lets
  it read the answers. So the daemon answers only to the names it is known by:
  loopback names and addresses, the listen address, the address the request arrived
  at, the node's name, the machine's host name and FQDN, and ``[daemon] allowed_hosts``
  (what a reverse proxy forwards). Anything else is 421 Misdirected Request. The port
  in Host is not compared: a rebinding page cannot choose a name, whatever the port.
- **Origin check** (POST, PUT, PATCH, DELETE): a page on another origin may still send
  "simple" requests (a form, ``fetch`` with ``mode: "no-cors"``) whose answers it cannot
  read but whose effects happen. Browsers label such requests with ``Sec-Fetch-Site``
  and ``Origin``; a request labelled as coming from elsewhere is 403. Forms can only send
  text/plain, urlencoded or multipart bodies, so a POST must declare JSON; a POST with
  no Content-Type at all is what curl and scripts send, and is accepted only when no
  browser header is present.

The unix socket is trusted for Host (its file mode already says who may connect), but
the Origin check still applies there: a reverse proxy in front of the socket forwards
what browsers send.

The decisions are pure functions of the request's method and headers; the middleware
only gathers them and turns a refusal into problem+json.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

import structlog
from aiohttp import web

from cronwarden.api.keys import SERVICES
from cronwarden.api.middlewares import Handler, problem
from cronwarden.config import DaemonConfig

log = structlog.get_logger("cronwarden.api")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Headers only browsers send; their absence marks curl, the CLI and scripts.
BROWSER_HEADERS = ("Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest")
SAME_SITE_FETCH = frozenset({"same-origin", "none"})  # "none": typed or bookmarked by the user
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
ACCEPTED_NAMES = (
    "loopback names and addresses (localhost, *.localhost, 127.0.0.0/8, [::1]), "
    "the listen address, the address the request arrived at, this node's name, this "
    "machine's host name and FQDN, and the names in [daemon] allowed_hosts (add the name "
    "a reverse proxy forwards there)"
)
_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+(?:%[\w.-]+)?)\]|(?P<name>[^:\[\]\s/@]+))(?::\d*)?")
_MAX_ECHO = 100  # characters of a refused header value repeated in the error


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: its HTTP status, problem slug and explanation."""

    status: int
    slug: str
    detail: str


# Every TCP request asks the three below of the same few Host values and addresses:
# answered once each, they cost a request ~1 us instead of ~75 (address parsing was
# 2.5 % of the loop under sustained API runs).  Bounded: a peer sending endless
# distinct Host values only turns the oldest out.
_NAMES_KEPT = 256


@functools.lru_cache(maxsize=_NAMES_KEPT)
def host_name(header: str) -> str | None:
    """The name in a Host header, lower-cased, without port, brackets or final dot;
    IP addresses in canonical form. None when the value is not a host at all."""
    match = _HOST.fullmatch(header.strip().lower())
    if match is None:
        return None
    name = match["v6"] or match["name"].rstrip(".")
    return canonical(name) if name else None


@functools.lru_cache(maxsize=_NAMES_KEPT)
def canonical(name: str) -> str:
    """One spelling per address (``::ffff:127.0.0.1`` is ``127.0.0.1``, ``::0:1`` is ``::1``)."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name.lower().rstrip(".")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


@functools.lru_cache(maxsize=_NAMES_KEPT)
def is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def accepted_names(daemon: DaemonConfig, machine: Iterable[str]) -> frozenset[str]:
    """Every name besides loopback that this daemon answers to (canonical, no port)."""
    names = set(daemon.allowed_hosts) | set(machine)
    listen_host = daemon.listen.host
    if listen_host is not None and listen_host not in WILDCARDS:
        names.add(listen_host)
    node = host_name(daemon.node_name)
    if node is not None:
        names.add(node)
    return frozenset(canonical(n) for n in names if n)


def host_refusal(
    header: str | None, accepted: frozenset[str], arrived_at: str | None
) -> Refusal | None:
    """421 unless Host names this daemon. No Host at all (HTTP/1.0 tools) is accepted:
    every browser sends one."""
    if header is None:
        return None
    name = host_name(header)
    if name is not None and (
        is_loopback(name) or name in accepted or (arrived_at is not None and name == arrived_at)
    ):
        return None
    shown = header.strip()[:_MAX_ECHO]
    return Refusal(
        421,
        "misdirected-host",
        f"this daemon does not answer to Host {shown!r}; it answers to {ACCEPTED_NAMES}",
    )


def origin_refusal(method: str, headers: Mapping[str, str], has_body: bool) -> Refusal | None:
    """403 for a state-changing request a browser made on another site's behalf; 415 for
    a POST that does not declare JSON (what a cross-site form or no-cors fetch sends)."""
    if method not in STATE_CHANGING:
        return None
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in SAME_SITE_FETCH:
        return Refusal(
            403,
            "cross-origin",
            f"a {method} from another site (Sec-Fetch-Site: {fetch_site[:_MAX_ECHO]}) is "
            "refused: from a browser, only pages served by this daemon may change things",
        )
    origin = headers.get("Origin")
    host = headers.get("Host", "")
    if origin is not None and not _same_origin(origin, host):
        return Refusal(
            403,
            "cross-origin",
            f"a {method} from origin {origin[:_MAX_ECHO]!r} is refused: it must come from "
            f"this daemon's own origin (http(s)://{host[:_MAX_ECHO]}); behind a reverse "
            "proxy, the proxy must pass the browser's Host header on",
        )
    if method == "POST":
        return _media_type_refusal(headers, has_body)
    return None


def _same_origin(origin: str, host: str) -> bool:
    origin = origin.strip().lower()
    host = host.strip().lower()
    return bool(host) and origin in (f"http://{host}", f"https://{host}")


def _media_type_refusal(headers: Mapping[str, str], has_body: bool) -> Refusal | None:
    from_browser = any(name in headers for name in BROWSER_HEADERS)
    declared = headers.get("Content-Type", "")
    media = declared.split(";", 1)[0].strip().lower()
    if not media:
        if not from_browser:
            return None  # curl -X POST, scripts: nothing a web page can send
        return Refusal(
            415,
            "unsupported-media-type",
            "a POST from a browser must send Content-Type: application/json "
            "(with {} as the body when there is nothing to send)",
        )
    if is_json_media(media):
        return None
    if media == "application/octet-stream" and not has_body and not from_browser:
        # What HTTP client libraries (aiohttp, the CLI) label a POST without a body;
        # a web page cannot send this type to another origin without a CORS preflight.
        return None
    return Refusal(
        415,
        "unsupported-media-type",
        f"a POST must be application/json, not {declared.strip()[:_MAX_ECHO]!r} "
        "(an empty body included); send no Content-Type only from scripts such as curl",
    )


def is_json_media(media: str) -> bool:
    """application/json or a JSON-based type (application/problem+json, ...)."""
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def machine_names() -> frozenset[str]:
    """This machine's host name and FQDN; the FQDN may ask DNS, so this runs off the loop."""
    names = {socket.gethostname()}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn())
    return frozenset(canonical(n) for n in names if n)


class HostGuard:
    """The accepted names for the current config, rebuilt when a reload swaps it."""

    def __init__(self) -> None:
        self._machine = frozenset({canonical(socket.gethostname())})
        self._for: DaemonConfig | None = None
        self._accepted: frozenset[str] = frozenset()

    def learn_machine_names(self, names: frozenset[str]) -> None:
        self._machine = names
        self._for = None

    def accepted(self, daemon: DaemonConfig) -> frozenset[str]:
        if daemon is not self._for:
            self._accepted = accepted_names(daemon, self._machine)
            self._for = daemon
        return self._accepted


HOST_GUARD = web.AppKey("host_guard", HostGuard)


async def learn_machine_names(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the FQDN is looked up on a thread, so a slow resolver never delays
    start-up; until it answers, the plain host name is known."""
    guard = app[HOST_GUARD]
    lookup = asyncio.get_running_loop().run_in_executor(None, machine_names)
    lookup.add_done_callback(
        lambda done: (
            None
            if done.cancelled() or done.exception()
            else guard.learn_machine_names(done.result())
        )
    )
    yield
    lookup.cancel()


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    refusal = _refusal(request)
    if refusal is None:
        return await handler(request)
    log.debug(  # not info: a hostile page could fill the log with these
        "api.request_refused",
        reason=refusal.slug,
        method=request.method,
        path=request.path[:200],
    )
    return problem(request, refusal.status, refusal.slug, refusal.detail)


def _refusal(request: web.Request) -> Refusal | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not isinstance(sockname, str):  # TCP (a unix socket's name is a path)
        daemon = request.app[SERVICES].live.current.daemon
        accepted = request.app[HOST_GUARD].accepted(daemon)
        arrived_at = canonical(str(sockname[0])) if sockname else None
        refusal = host_refusal(request.headers.get("Host"), accepted, arrived_at)
        if refusal is not None:
            return refusal
    return origin_refusal(request.method, request.headers, request.body_exists)
