"""The API address a node records for the others (the log relay asks it there)."""

from __future__ import annotations

import socket

import pytest

from cronwarden.daemon import advertised_host


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::", ""])
def test_a_listener_on_every_interface_is_reached_by_the_host_name(wildcard: str) -> None:
    assert advertised_host(wildcard) == socket.getfqdn()


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.7", "node-a.example", None])
def test_a_named_address_is_kept(host: str | None) -> None:
    assert advertised_host(host) == host
