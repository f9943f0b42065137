"""Run tags and metadata, on SQLite and PostgreSQL: a trigger's own (API and `cronwarden
run --tag --metadata`), a task's (config, [defaults]) on every run of it (scheduled,
retried, chained, rerun), run lists filtered by tag (`cronwarden runs --tag`), the
search finding tags, and bad input refused with a 400 that says what is allowed."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any
from urllib.parse import quote

import pytest
from conftest import wait_for  # type: ignore[import-not-found]

pytestmark = pytest.mark.both_databases

CLI = [sys.executable, "-m", "cronwarden"]
TASKS = """
[defaults]
tags = ["team:data"]

[tasks.report]
command = "true"

[tasks.flaky]
command = "exit 1"
retries = 1
retry_delay = "0"
tags = ["flaky"]

[tasks.downstream]
command = "true"
after = ["flaky"]
after_on = ["failed"]
tags = ["chained", "team:data"]

[tasks.ticker]
command = "true"
schedule = "* * * * * *"
tags = ["every-second"]
"""


def trigger(daemon: Any, task: str, body: dict[str, Any], **headers: str) -> Any:
    return daemon.request("POST", f"/api/tasks/{task}/runs", body, headers=headers or None)


def listed(daemon: Any, query: str) -> list[str]:
    answer = daemon.get(f"/api/runs?limit=1000&{query}")
    assert answer.status == 200, answer
    return [run["id"] for run in answer.body["runs"]]


def test_every_run_gets_its_task_tags_and_a_trigger_adds_its_own(make_daemon) -> None:
    daemon = make_daemon(TASKS)
    asked = {"tags": ["customer:42", "env=prod", "customer:42"], "metadata": {"ticket": 7}}
    made = trigger(daemon, "report", asked)
    assert made.status == 201, made
    run = daemon.wait_run(made.body["id"])
    assert run["tags"] == ["team:data", "customer:42", "env=prod"]  # task's first, each once
    assert run["metadata"] == {"ticket": 7}

    # A retry and the chained run its final end starts; a rerun carries the trigger's.
    first = trigger(daemon, "flaky", {"tags": ["batch-9"], "metadata": {"by": "ann"}}).body
    wait_for(lambda: listed(daemon, "task_name=downstream&status=ended"), 30, "the chain")
    attempts = daemon.get(f"/api/runs/{first['id']}?expand=attempts").body["attempts"]
    assert [a["tags"] for a in attempts] == [["flaky", "batch-9"]] * 2
    assert [a["metadata"] for a in attempts] == [{"by": "ann"}] * 2
    chained = daemon.runs(task_name="downstream")[0]
    assert chained["tags"] == ["chained", "team:data"] and chained["metadata"] == {}
    again = daemon.post(f"/api/runs/{run['id']}/rerun").body
    assert again["tags"] == run["tags"] and again["metadata"] == {"ticket": 7}

    ticks = wait_for(lambda: daemon.runs(task_name="ticker"), 30, "a scheduled run")
    assert ticks[0]["tags"] == ["every-second"] and ticks[0]["metadata"] == {}
    plain = daemon.wait_run(daemon.trigger("report")["id"])
    assert plain["tags"] == ["team:data"] and plain["metadata"] == {}

    # Lists: every tag asked for must match, repeated or comma-separated.
    assert listed(daemon, "tag=customer:42") == [again["id"], run["id"]]
    assert listed(daemon, "tag=team:data&tag=env%3Dprod") == [again["id"], run["id"]]
    assert listed(daemon, "tag=env%3Dprod,batch-9") == []
    assert set(listed(daemon, "tag=batch-9")) == {a["id"] for a in attempts}
    assert listed(daemon, "tag=Batch-9") == []  # tags are case-sensitive
    assert listed(daemon, "task_name=flaky&tag=flaky&sort_field=end_at&sort_direction=asc") == [
        a["id"] for a in attempts
    ]
    walked = daemon.get("/api/runs?tag=team:data&limit=1").body
    second = daemon.get(f"/api/runs?tag=team:data&limit=1&cursor={walked['next_cursor']}").body
    assert "team:data" in second["runs"][0]["tags"]
    task_runs = daemon.get("/api/tasks/report/runs?tag=env=prod").body["runs"]
    assert [r["id"] for r in task_runs] == [again["id"], run["id"]]
    # The search finds tags as it finds params and errors.
    assert listed(daemon, "search=customer:4") == [again["id"], run["id"]]
    assert set(listed(daemon, "search=batch-9")) == {a["id"] for a in attempts}


BAD_TRIGGERS = [
    ({"tags": [f"t{i}" for i in range(11)]}, "invalid-tags", "at most 10 tags"),
    ({"tags": ["x" * 65]}, "invalid-tags", "65 characters long: a tag is 1 to 64 characters"),
    ({"tags": ["two words"]}, "invalid-tags", "A-Z a-z 0-9 . _ - : / ="),
    ({"tags": [""]}, "invalid-tags", "is not a tag"),
    ({"tags": "nightly"}, "invalid-tags", "a list of strings"),
    ({"tags": [7]}, "invalid-tags", "a list of strings"),
    ({"metadata": [1, 2]}, "invalid-metadata", "JSON object, e.g."),
    ({"metadata": "ticket 7"}, "invalid-metadata", "(got a string)"),
    ({"metadata": {"blob": "x" * 5000}}, "invalid-metadata", "at most 4096 bytes"),
    ({"metadata": {"nul": "a\u0000b"}}, "invalid-metadata", "NUL"),
    ({"metadata": {"a": json.loads("[" * 32 + "1" + "]" * 32)}}, "invalid-metadata", "32 levels"),
]


def test_bad_tags_and_metadata_are_refused_saying_what_is_allowed(make_daemon) -> None:
    daemon = make_daemon(TASKS.replace('schedule = "* * * * * *"\n', ""))
    for body, slug, said in BAD_TRIGGERS:
        answer = trigger(daemon, "report", body)
        assert answer.status == 400 and answer.content_type == "application/problem+json", body
        assert answer.body["type"] == f"urn:cronwarden:problem:{slug}", answer.body
        assert said in answer.body["detail"], answer.body
    assert daemon.runs() == []  # nothing was recorded
    for query, said in (("tag=two%20words", "is not a tag"), ("tag=" + "x" * 65, "65 char")):
        answer = daemon.get(f"/api/runs?{query}")
        assert answer.status == 400 and said in answer.body["detail"], answer.body
        assert answer.body["type"] == "urn:cronwarden:problem:invalid-tags"
    many = "&".join(f"tag=t{i}" for i in range(21))
    assert "at most 20 tags" in daemon.get(f"/api/runs?{many}").body["detail"]

    # An Idempotency-Key's repeat must ask for the same tags and metadata.
    key = {"Idempotency-Key": "deploy-1"}
    made = trigger(daemon, "report", {"tags": ["a"], "metadata": {"n": 1}}, **key)
    same = trigger(daemon, "report", {"tags": ["a"], "metadata": {"n": 1}}, **key)
    assert (made.status, same.status) == (201, 200) and same.body["id"] == made.body["id"]
    other = trigger(daemon, "report", {"tags": ["b"], "metadata": {"n": 1}}, **key)
    assert other.status == 422 and other.body["type"].endswith("idempotency-key-reused")


def cli(daemon: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args[:1], "--url", daemon.url, *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_tags_runs_and_lists_by_tag(make_daemon) -> None:
    daemon = make_daemon(TASKS.replace('schedule = "* * * * * *"\n', ""))
    made = cli(
        daemon, "run", "report", "--tag", "cli", "--tag", "env=test", "--metadata", '{"n": 1}',
        "--json", "--wait",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    run = json.loads(made.stdout)
    assert run["tags"] == ["team:data", "cli", "env=test"] and run["metadata"] == {"n": 1}
    daemon.wait_run(daemon.trigger("report")["id"])
    by_tag = json.loads(cli(daemon, "runs", "--tag", "cli", "--tag", "env=test", "--json").stdout)
    assert [r["id"] for r in by_tag["runs"]] == [run["id"]]
    table = cli(daemon, "runs", "--tag", "team:data", "--wide").stdout.splitlines()
    assert table[0].split()[-1] == "TAGS" and len(table) == 3
    assert {line.split()[-1] for line in table[1:]} == {"team:data,cli,env=test", "team:data"}
    shown = cli(daemon, "show", run["id"]).stdout.splitlines()
    assert "tags:         team:data, cli, env=test" in shown
    assert 'metadata:     {"n": 1}' in shown

    for args, code, said in [
        (("--metadata", "[1]"), 1, "metadata is a JSON object"),
        (("--metadata", "{oops"), 2, "not JSON"),
        (("--tag", "no spaces"), 1, "is not a tag"),
        (tuple(a for i in range(11) for a in ("--tag", f"t{i}")), 1, "at most 10 tags"),
    ]:
        refused = cli(daemon, "run", "report", *args)
        assert refused.returncode == code and said in refused.stderr, (args, refused.stderr)
    bad_filter = cli(daemon, "runs", "--tag", "a,b c")
    assert bad_filter.returncode == 1 and "is not a tag" in bad_filter.stderr
    assert len(daemon.runs()) == 2


def test_a_task_page_of_runs_by_tag_follows_quoting(make_daemon) -> None:
    """A tag's characters need no escaping in a URL but ``=`` in a value, which a
    client may send either way."""
    daemon = make_daemon(TASKS.replace('schedule = "* * * * * *"\n', ""))
    run = trigger(daemon, "report", {"tags": ["k=v/x.y_z-1:2"]}).body
    for written in ("k=v/x.y_z-1:2", quote("k=v/x.y_z-1:2", safe="")):
        assert listed(daemon, f"tag={written}") == [run["id"]]
