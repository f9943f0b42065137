"""The Host, Origin and connection rules as pure decisions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cronwarden.api.connections import ConnectionGate, _Connection, connection_cap
from cronwarden.api.origin import accepted_names, host_name, host_refusal, origin_refusal
from cronwarden.config import DaemonConfig


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:9477", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:9477", "::1"),
        ("[0:0::1]", "::1"),
        ("cron.example.com.:443", "cron.example.com"),
        ("", None),
        ("a b", None),
        ("user@host", None),
        ("[::1", None),
    ],
)
def test_host_name(header: str, name: str | None) -> None:
    assert host_name(header) == name


def daemon(**values: Any) -> DaemonConfig:
    return DaemonConfig.model_validate({"data_dir": "/tmp/x", **values})


def test_accepted_names_hold_the_listen_node_machine_and_allowed() -> None:
    config = daemon(listen="127.0.0.2:9000", node="web-1:9000", allowed_hosts=["Proxy.example"])
    names = accepted_names(config, ["box", "box.lan"])
    assert {"127.0.0.2", "web-1", "box", "box.lan", "proxy.example"} <= names


@pytest.mark.parametrize(
    ("header", "refused"),
    [
        (None, False),
        ("localhost:1", False),
        ("x.localhost", False),
        ("127.9.9.9", False),
        ("[::1]:80", False),
        ("box", False),
        ("10.0.0.5:9477", False),  # the address the request arrived at
        ("evil.example", True),
        ("evil.example:9477", True),
        ("localhost.evil.example", True),
        ("10.0.0.6", True),
        ("", True),
    ],
)
def test_host_refusal(header: str | None, refused: bool) -> None:
    refusal = host_refusal(header, frozenset({"box"}), "10.0.0.5")
    assert (refusal is not None) == refused
    if refusal is not None:
        assert refusal.status == 421 and "allowed_hosts" in refusal.detail


HOST = {"Host": "127.0.0.1:9477"}
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "headers", "has_body", "status"),
    [
        ("GET", {"Origin": "http://evil", "Sec-Fetch-Site": "cross-site"}, False, None),
        ("POST", {}, False, None),  # curl -X POST
        ("POST", {"Content-Type": "application/octet-stream"}, False, None),  # aiohttp client
        ("POST", {"Content-Type": "application/octet-stream"}, True, 415),
        ("POST", {"Content-Type": "application/merge-patch+json"}, True, None),
        ("POST", {"Content-Type": "application/json; charset=utf-8"}, True, None),
        ("POST", {"Content-Type": "text/plain"}, False, 415),
        ("POST", {"Content-Type": "Application/X-WWW-Form-Urlencoded"}, True, 415),
        ("POST", {"Sec-Fetch-Mode": "cors"}, False, 415),
        ("POST", {**JSON, "Sec-Fetch-Site": "same-origin"}, True, None),
        ("POST", {**JSON, "Sec-Fetch-Site": "none"}, True, None),
        ("POST", {**JSON, "Sec-Fetch-Site": "same-site"}, True, 403),
        ("POST", {**JSON, "Origin": "http://127.0.0.1:9477"}, True, None),
        ("POST", {**JSON, "Origin": "https://127.0.0.1:9477"}, True, None),
        ("POST", {**JSON, "Origin": "http://127.0.0.1:9478"}, True, 403),
        ("POST", {**JSON, "Origin": "null"}, True, 403),
        ("DELETE", {"Origin": "http://evil"}, False, 403),
        ("PUT", {"Content-Type": "text/plain"}, True, None),  # only POST bodies are typed
    ],
)
def test_origin_refusal(
    method: str, headers: dict[str, str], has_body: bool, status: int | None
) -> None:
    refusal = origin_refusal(method, {**HOST, **headers}, has_body)
    assert (refusal.status if refusal else None) == status


@pytest.mark.parametrize(("limit", "cap"), [(1024, 240), (256, 48), (64, 8), (10**6, 4096)])
def test_connection_cap_leaves_most_descriptors_to_runs(limit: int, cap: int) -> None:
    assert connection_cap(limit) == cap


class FakeTransport(asyncio.WriteTransport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.written = b""

    def write(self, data: Any) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True


class Inner(asyncio.Protocol):
    pass


def test_at_the_cap_the_longest_idle_connection_makes_room() -> None:
    gate = ConnectionGate(cap=2, clock=lambda: 0.0)
    conns = []
    for _ in range(2):
        conn = gate.wrap(Inner)()
        conn.connection_made(FakeTransport())
        conns.append(conn)
    first, second = conns
    assert isinstance(first, _Connection) and isinstance(second, _Connection)
    gate.started(first)
    gate.finished(first)  # first is now the most recently active
    third = gate.wrap(Inner)()
    third.connection_made(FakeTransport())
    assert second.transport.closed and not first.transport.closed  # type: ignore[union-attr]
    assert gate.open == 2

    gate.started(first)
    gate.started(third)  # all busy: the next is answered 503
    fourth = gate.wrap(Inner)()
    transport = FakeTransport()
    fourth.connection_made(transport)
    assert transport.closed and transport.written.startswith(b"HTTP/1.1 503")
    assert gate.open == 2
