"""What the dashboard reads and is served, through a real daemon: its files, the
caller's access, schedules in words, next fires with DST shifts, task definitions."""

from __future__ import annotations

import hashlib

import pytest

SECRETS = {"viewer": ("read-secret", "read"), "ops": ("admin-secret", "admin")}
TASKS = """
[tasks.nightly]
command = "true"
schedule = "30 1 * * *"
timezone = "Europe/London"
timeout = "90s"
env = { API_KEY = "s3cret-value", REGION = "eu" }
secret_env = ["API_KEY"]

[tasks.adhoc]
command = ["/bin/echo", "hi"]
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from conftest import Daemon  # type: ignore[import-not-found]

    tokens = "".join(
        f'[[daemon.tokens]]\nname = "{name}"\n'
        f'sha256 = "{hashlib.sha256(secret.encode()).hexdigest()}"\nscopes = ["{scope}"]\n'
        for name, (secret, scope) in SECRETS.items()
    )
    d = Daemon(tmp_path_factory.mktemp("dash-api"), TASKS, daemon_extra=tokens).start()
    yield d
    assert d.stop() == 0


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[name][0]}"}


def test_the_page_and_its_files_need_no_token_and_hold_no_data(daemon) -> None:
    page = daemon.request("GET", "/")
    assert page.status == 200 and page.content_type == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    for name in ("app.js", "api.js", "tasks.js", "app.css"):
        asset = daemon.request("GET", f"/ui/{name}")
        assert asset.status == 200, name
        assert asset.content_type in ("text/javascript", "text/css")
        again = daemon.request(
            "GET", f"/ui/{name}", headers={"If-None-Match": asset.headers["ETag"]}
        )
        assert again.status == 304
    missing = daemon.request("GET", "/ui/nothing.js")
    assert missing.status == 404 and missing.content_type == "application/problem+json"
    # The API itself stays closed.
    assert daemon.request("GET", "/api/tasks").status == 401


def test_info_says_what_the_callers_token_allows(daemon) -> None:
    viewer = daemon.request("GET", "/api/info", headers=as_("viewer")).body["access"]
    assert viewer == {"token": "viewer", "scope": "read"}
    ops = daemon.request("GET", "/api/info", headers=as_("ops")).body["access"]
    assert ops == {"token": "ops", "scope": "admin"}


def test_tasks_carry_their_schedule_in_words(daemon) -> None:
    tasks = {
        t["name"]: t
        for t in daemon.request("GET", "/api/tasks", headers=as_("viewer")).body["tasks"]
    }
    assert tasks["nightly"]["schedule_text"] == "At 01:30"
    assert tasks["adhoc"]["schedule_text"] is None


def test_the_task_list_is_the_documented_model_in_name_order(daemon) -> None:
    from cronwarden.api.schemas import TaskList

    ran = daemon.request("POST", "/api/tasks/adhoc/runs?wait=30", headers=as_("ops"))
    assert ran.status == 201 and ran.body["end_reason"] == "success", ran
    body = daemon.request("GET", "/api/tasks", headers=as_("viewer")).body
    assert TaskList.model_validate(body).model_dump(mode="json") == body  # nothing more, less
    assert [t["name"] for t in body["tasks"]] == ["adhoc", "nightly"]
    assert body["tasks"][0]["last_run"]["end_reason"] == "success"
    assert body["tasks"][1]["last_run"] is None


def test_a_task_definition_hides_secret_env_values(daemon) -> None:
    task = daemon.request("GET", "/api/tasks/nightly?definition=true", headers=as_("viewer")).body
    definition = task["definition"]
    assert definition["env"] == {"API_KEY": "***", "REGION": "eu"}
    assert definition["timeout"] == "1m30s" and definition["timezone"] == "Europe/London"
    assert definition["command"] == "true" and "name" not in definition
    assert "s3cret-value" not in str(task)
    plain = daemon.request("GET", "/api/tasks/nightly", headers=as_("viewer")).body
    assert plain["definition"] is None


def test_next_fires_mark_the_dst_shifts(daemon) -> None:
    fires = daemon.request("GET", "/api/tasks/nightly?next=400", headers=as_("viewer")).body["next"]
    shifts = [f["offset_change_minutes"] for f in fires if f["offset_change_minutes"]]
    assert sorted(shifts) == [-60, 60]  # a year holds one spring and one autumn change
    first_shifted = next(f for f in fires if f["offset_change_minutes"])
    assert first_shifted["at"].endswith(("+01:00", "+00:00"))


def test_an_unknown_task_query_parameter_is_refused(daemon) -> None:
    refused = daemon.request("GET", "/api/tasks/nightly?nxt=3", headers=as_("viewer"))
    assert refused.status == 422
    assert refused.body["errors"][0]["field"] == "nxt"


def test_a_long_task_list_has_every_task_in_order_with_its_last_run(make_daemon) -> None:
    # Over two slices of the listing (500 tasks' last runs are read at a time).
    names = [f"job-{i:04d}" for i in range(1100)]
    daemon = make_daemon("".join(f'[tasks.{n}]\ncommand = "true"\n' for n in reversed(names)))
    ran = {name: daemon.wait_run(daemon.trigger(name)["id"]) for name in names[498:502:3]}
    ran |= {names[-1]: daemon.wait_run(daemon.trigger(names[-1])["id"])}
    listed = daemon.get("/api/tasks").body["tasks"]
    assert [t["name"] for t in listed] == names
    with_runs = {t["name"]: t["last_run"]["id"] for t in listed if t["last_run"] is not None}
    assert with_runs == {name: run["id"] for name, run in ran.items()}
