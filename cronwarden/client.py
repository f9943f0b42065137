"""A small API client for the CLI's client verbs: TCP or the daemon's unix socket."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from cronwarden.config import Listen

DEFAULT_URL = "http://127.0.0.1:9477"


class ClientError(Exception):
    """The API could not be reached or refused the request; the message says why.

    ``status`` is the HTTP status of the answer (None: there was none), ``problem`` the
    answer's problem+json body when it had one, ``request`` the method and path asked.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        *,
        problem: dict[str, Any] | None = None,
        request: tuple[str, str] = ("", ""),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem
        self.request = request


@dataclass(frozen=True)
class Target:
    """Where the API is: ``http://host:port`` or ``unix:/path.sock``."""

    base: str
    socket_path: str | None = None

    @classmethod
    def parse(cls, url: str) -> Target:
        if url.startswith("unix:"):
            return cls("http://cronwarden", url.removeprefix("unix:"))
        if not url.startswith(("http://", "https://")):
            url = f"http://{url}"
        return cls(url.rstrip("/"))


def resolve_url(url: str | None, listen: Listen | None) -> str:
    """--url, else $CRONWARDEN_URL, else the config's listen address, else the default."""
    if url:
        return url
    if os.environ.get("CRONWARDEN_URL"):
        return os.environ["CRONWARDEN_URL"]
    if listen is not None:
        return str(listen) if listen.unix_path else f"http://{listen}"
    return DEFAULT_URL


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event: its type (``message`` unless named), id and data."""

    kind: str
    id: str | None
    data: str


# A stream with no byte (not even a heartbeat, sent every 15 s) for this long is dead.
STREAM_SILENCE = 60.0
RECONNECTS = 5


class Client:
    """The API at ``url``; ``token``, when given, goes in every request's
    ``Authorization: Bearer`` header (the CLI resolves it: --token, --token-file or
    $CRONWARDEN_TOKEN)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.target = Target.parse(url)
        self.token = token

    @property
    def where(self) -> str:
        return self.target.socket_path or self.target.base

    def follow(
        self,
        path: str,
        query: dict[str, Any] | None,
        handle: Callable[[ServerEvent], bool],
    ) -> None:
        """Read server-sent events until ``handle`` returns False.  A stream that
        breaks is resumed with Last-Event-ID, so no event is lost or repeated."""
        asyncio.run(self._follow(path, query, handle))

    def download(self, path: str, sink: Callable[[bytes], Any]) -> None:
        """Stream a response body into ``sink`` as it arrives."""
        asyncio.run(self._download(path, sink))

    def _url(self, path: str, query: dict[str, Any] | None) -> str:
        if query and any(v is not None for v in query.values()):
            # A list value is the parameter repeated (?tag=a&tag=b).
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        return self.target.base + path

    def _session(self, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
        connector = (
            aiohttp.UnixConnector(path=self.target.socket_path) if self.target.socket_path else None
        )
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers)

    async def _follow(
        self, path: str, query: dict[str, Any] | None, handle: Callable[[ServerEvent], bool]
    ) -> None:
        last_id: str | None = None
        failures = 0
        timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=STREAM_SILENCE)
        async with self._session(timeout) as session:
            while True:
                headers = {"Accept": "text/event-stream"}
                if last_id is not None:
                    headers["Last-Event-ID"] = last_id
                why = "the daemon closed the stream"
                try:
                    async with session.get(self._url(path, query), headers=headers) as resp:
                        if resp.status >= 400 or resp.content_type != "text/event-stream":
                            raise self._refused(resp, "GET", path, await resp.text())
                        parser = EventStreamParser()
                        async for chunk in resp.content.iter_any():
                            for event in parser.feed(chunk):
                                failures = 0
                                if event.id is not None:
                                    last_id = event.id
                                if not handle(event):
                                    return
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    why = str(exc) or type(exc).__name__
                # The stream broke or closed early (a restart, say): resume after a pause.
                failures += 1
                if failures > RECONNECTS:
                    raise ClientError(f"lost the stream from {self.where}: {why}")
                await asyncio.sleep(min(0.25 * 2**failures, 5.0))

    async def _download(self, path: str, sink: Callable[[bytes], Any]) -> None:
        timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=STREAM_SILENCE)
        try:
            async with (
                self._session(timeout) as session,
                session.get(self._url(path, None)) as resp,
            ):
                if resp.status >= 400:
                    raise self._refused(resp, "GET", path, await resp.text())
                async for chunk in resp.content.iter_any():
                    sink(chunk)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ClientError(f"cannot read {path} from {self.where}: {exc}") from None

    def call(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> Any:
        return asyncio.run(self._call(method, path, body, query))

    async def _call(self, method: str, path: str, body: Any, query: dict[str, Any] | None) -> Any:
        try:
            async with (
                self._session(aiohttp.ClientTimeout(total=30)) as session,
                # A POST always carries JSON ({} when there is nothing to say), as the
                # daemon asks of every POST it cannot tell from a browser's.
                session.request(
                    method,
                    self._url(path, query),
                    json={} if body is None and method == "POST" else body,
                ) as resp,
            ):
                text = await resp.text()
                if resp.status >= 400 or (text and not _is_json(resp.content_type)):
                    raise self._refused(resp, method, path, text)
                try:
                    return json.loads(text) if text else None
                except ValueError:
                    raise self._refused(resp, method, path, text) from None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise ClientError(f"cannot reach the cronwarden API at {self.where}: {exc}") from None
        except TimeoutError:
            raise ClientError("the cronwarden API did not answer within 30s") from None

    def _refused(
        self, resp: aiohttp.ClientResponse, method: str, path: str, text: str
    ) -> ClientError:
        """The error for an answer that is not what was asked: the API's problem, or,
        when the answer is not cronwarden's JSON at all (a proxy's error page, another
        service), one line naming its status and content type, never the page."""
        problem = _json_or_none(text) if _is_json(resp.content_type) else None
        if not isinstance(problem, dict) or "detail" not in problem:
            kind = resp.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
            return ClientError(
                f"the server at {self.where} answered {resp.status} {kind}, not cronwarden's "
                "JSON API: is a proxy in the way?",
                resp.status,
                request=(method, path),
            )
        return ClientError(
            problem_text(resp.status, problem), resp.status, problem=problem, request=(method, path)
        )


class EventStreamParser:
    """Server-sent events out of a byte stream, fed in chunks as they arrive (the
    WHATWG event-stream format: fields ``event``, ``id``, ``data``; lines starting with
    ``:``, such as heartbeats, are comments)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._kind = "message"
        self._id: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        events = []
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").removesuffix("\r")
            if not line:
                if self._data:
                    events.append(ServerEvent(self._kind, self._id, "\n".join(self._data)))
                self._kind, self._id, self._data = "message", None, []
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self._kind = value
            elif name == "id":
                self._id = value
            elif name == "data":
                self._data.append(value)
        return events


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _is_json(content_type: str) -> bool:
    """application/json, or a JSON-based type (application/problem+json)."""
    return content_type == "application/json" or content_type.endswith("+json")


def problem_text(status: int, problem: dict[str, Any], names: Mapping[str, str] = {}) -> str:
    """A problem+json answer in words: its status, title and detail, then a line per
    error; ``names`` calls a field by the name the user knows it by (an option's)."""
    lines = [f"{status} {problem.get('title', '')}: {problem['detail']}"]
    for err in problem.get("errors") or []:
        if isinstance(err, dict) and "field" in err and "message" in err:
            field = str(err["field"])
            shown = names.get(field.split(".")[0], field)
            lines.append(f"  {shown}: {err['message']}")
        else:
            lines.append("  " + "; ".join(f"{k}: {v}" for k, v in dict(err).items()))
    return "\n".join(lines)
