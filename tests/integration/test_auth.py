"""Tokens and scopes through a real daemon."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

TOKENS = {"reader": "r-secret", "ci": "t-secret", "ops": "a-secret"}


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    from conftest import Daemon  # type: ignore[import-not-found]

    extra = "".join(
        f'[[daemon.tokens]]\nname = "{name}"\nsha256 = "{digest(secret)}"\nscopes = ["{scope}"]\n'
        for (name, secret), scope in zip(TOKENS.items(), ["read", "trigger", "admin"], strict=True)
    )
    d = Daemon(
        tmp_path_factory.mktemp("auth"), '[tasks.a]\ncommand = "true"\n', daemon_extra=extra
    ).start()
    yield d
    assert d.stop() == 0


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def test_health_stays_open(daemon) -> None:
    assert daemon.get("/health").status == 200


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}]
)
def test_missing_or_unknown_token_is_401(daemon, headers: dict[str, str]) -> None:
    resp = daemon.request("GET", "/api/tasks", headers=headers)
    assert resp.status == 401 and resp.content_type == "application/problem+json"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert daemon.request("GET", "/api/nothing", headers=headers).status == 401  # no probing


def test_scopes_nest(daemon) -> None:
    assert daemon.request("GET", "/api/runs", headers=bearer("reader")).status == 200
    refused = daemon.request("POST", "/api/tasks/a/runs", headers=bearer("reader"))
    assert refused.status == 403 and "trigger" in refused.body["detail"]
    run = daemon.request("POST", "/api/tasks/a/runs", headers=bearer("ci"))
    assert run.status == 201
    assert daemon.request("GET", f"/api/runs/{run.body['id']}", headers=bearer("ci")).status == 200
    assert daemon.request("POST", "/api/reload", headers=bearer("ci")).status == 403
    assert daemon.request("POST", "/api/reload", headers=bearer("ops")).status == 200
    assert daemon.request("POST", "/api/tasks/a/pause", headers=bearer("ops")).status == 200
    assert daemon.request("POST", "/api/tasks/a/resume", headers=bearer("ops")).status == 200


def test_the_cli_sends_the_token_from_the_environment(daemon) -> None:
    env = {"CRONWARDEN_TOKEN": TOKENS["reader"], "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [sys.executable, "-m", "cronwarden", "tasks", "--url", daemon.url],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert ok.returncode == 0 and "a" in ok.stdout
    denied = subprocess.run(
        [sys.executable, "-m", "cronwarden", "tasks", "--url", daemon.url],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/bin"},
    )
    assert denied.returncode == 1 and "401" in denied.stderr


def test_a_token_that_is_not_utf8_is_401_not_500(daemon) -> None:
    from test_hostile_inputs import send  # type: ignore[import-not-found]

    resp = send(daemon, "GET", "/api/tasks", {"Authorization": b"Bearer \xff\xfe"})
    assert resp.status == 401
