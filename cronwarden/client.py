"""A small API client for the CLI's client verbs: TCP or the daemon's unix socket."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from cronwarden.config import Listen

DEFAULT_URL = "http://127.0.0.1:9477"


class ClientError(Exception):
    """The API could not be reached or refused the request; the message says why."""


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


class Client:
    def __init__(self, url: str, token: str | None = None) -> None:
        self.target = Target.parse(url)
        self.token = token if token is not None else os.environ.get("CRONWARDEN_TOKEN")

    def call(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> Any:
        return asyncio.run(self._call(method, path, body, query))

    async def _call(self, method: str, path: str, body: Any, query: dict[str, Any] | None) -> Any:
        connector = (
            aiohttp.UnixConnector(path=self.target.socket_path) if self.target.socket_path else None
        )
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        timeout = aiohttp.ClientTimeout(total=30)
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.request(
                    method, self.target.base + path, json=body, headers=headers
                ) as resp,
            ):
                text = await resp.text()
                data = json.loads(text) if text else None
                if resp.status >= 400:
                    raise ClientError(_problem_text(resp.status, data, text))
                return data
        except (aiohttp.ClientConnectionError, OSError) as exc:
            where = self.target.socket_path or self.target.base
            raise ClientError(f"cannot reach the cronwarden API at {where}: {exc}") from None
        except TimeoutError:
            raise ClientError("the cronwarden API did not answer within 30s") from None


def _problem_text(status: int, data: Any, text: str) -> str:
    if isinstance(data, dict) and "detail" in data:
        lines = [f"{status} {data.get('title', '')}: {data['detail']}"]
        for err in data.get("errors") or []:
            lines.append("  " + "; ".join(f"{k}: {v}" for k, v in err.items()))
        return "\n".join(lines)
    return f"HTTP {status}: {text[:500]}"
