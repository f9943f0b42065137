"""Alerts in words (mail subjects and bodies, chat messages), and which alerts the
service raises with the run's output: a real ``Alerts`` with a fake clock, a real
SQLite store and a real run log on disk, its deliveries recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dispatch_doubles import T0, FakeClock  # type: ignore[import-not-found]

from cronwarden.alerts import wording
from cronwarden.alerts.service import Alerts
from cronwarden.config import NotifyConfig, parse_config
from cronwarden.live_config import LiveConfig
from cronwarden.run_record import RunRecord
from cronwarden.runlog.layout import index_path
from cronwarden.runlog.masking import SecretMasker
from cronwarden.runlog.writer import LogWriter
from cronwarden.store import Store, open_engine


def alert(event: str, run: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    return {
        "id": "a1",
        "event": event,
        "task": "backup",
        "at": "2026-01-31T12:00:00.000Z",
        "node": "n1",
        "message": "backup failed with exit code 2",
        "run": run,
        "log_url": None,
        "details": {},
        "output": None,
        **more,
    }


FAILED = {"id": "r1", "end_reason": "failed", "exit_code": 2, "signal": None, "attempt": 1}


@pytest.mark.parametrize(
    ("event", "run", "expected"),
    [
        ("run.failed", FAILED, "cronwarden: backup failed (exit 2)"),
        (
            "run.failed",
            {**FAILED, "exit_code": None, "signal": 9},
            "cronwarden: backup failed (signal 9)",
        ),
        (
            "run.failed",
            {**FAILED, "end_reason": "log_overflow", "exit_code": None, "signal": 9},
            "cronwarden: backup failed (output over max_log_size, signal 9)",
        ),
        (
            "run.timeout",
            {**FAILED, "end_reason": "timeout", "exit_code": None, "signal": 15},
            "cronwarden: backup timed out (signal 15)",
        ),
        (
            "run.output",
            {**FAILED, "end_reason": "success", "exit_code": 0},
            "cronwarden: backup printed output (succeeded, exit 0)",
        ),
        ("run.output", FAILED, "cronwarden: backup printed output (failed, exit 2)"),
        ("run.stuck", {**FAILED, "end_reason": None}, "cronwarden: backup is stuck"),
        ("task.overdue", None, "cronwarden: backup is overdue"),
    ],
)
def test_a_subject_names_the_task_the_event_and_the_outcome(
    event: str, run: dict[str, Any] | None, expected: str
) -> None:
    assert wording.subject(alert(event, run)) == expected


def test_missed_fires_are_counted_in_the_subject() -> None:
    assert wording.subject(alert("fire.missed", details={"missed": 3})) == (
        "cronwarden: backup missed 3 fires"
    )
    assert wording.subject(alert("fire.missed", details={"missed": 1})) == (
        "cronwarden: backup missed a fire"
    )


def test_severity_follows_the_event_and_for_output_the_run() -> None:
    assert wording.severity(alert("run.failed", FAILED)) == "failure"
    assert wording.severity(alert("run.output", FAILED)) == "failure"
    assert wording.severity(alert("run.output", {**FAILED, "end_reason": "success"})) == "info"
    assert wording.severity(alert("task.recovered")) == "success"
    assert wording.severity(alert("run.stuck")) == "warning"


def test_the_body_carries_the_message_the_run_and_the_excerpt() -> None:
    output = {"text": "copying\nno space left\n", "size": 22, "truncated": False}
    body = wording.text(alert("run.failed", FAILED, output=output, log_url="http://h/log"))
    assert body == (
        "backup failed with exit code 2\n\n"
        "Run:  r1 (attempt 1)\nLog:  http://h/log\nNode: n1\nAt:   2026-01-31T12:00:00.000Z\n\n"
        "Output:\n\ncopying\nno space left\n"
    )


def test_a_cut_excerpt_says_how_much_of_the_output_it_shows() -> None:
    output = {"text": "abc", "size": 10, "truncated": True}
    assert "Output (the first 3 of 10 bytes):\n\nabc\n" in wording.text(
        alert("run.output", FAILED, output=output)
    )
    silent = {"text": "", "size": 0, "truncated": False}
    assert "It printed nothing." in wording.text(alert("run.failed", FAILED, output=silent))


# -- the service: which alerts carry the output ------------------------------------------

CONFIG = """
[notify.mail]
type = "webhook"
url = "http://127.0.0.1:9/never-called"
events = ["run.output", "run.failed"]
[notify.pager]
type = "webhook"
url = "http://127.0.0.1:9/never-called"
events = ["run.failed"]

[tasks.report]
command = "true"
retries = 1
notify = ["mail"]
[tasks.paged]
command = "true"
notify = ["pager"]
"""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """SQLite only (overrides the shared fixture): alerts do not depend on the engine."""
    store = await Store.open(open_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"))
    yield store
    await store.close()


class Sent:
    def __init__(self, store: Store, tmp_path: Path) -> None:
        self.logs_dir = tmp_path / "logs"
        self.logs_dir.mkdir()
        self.sent: list[tuple[str, Mapping[str, Any]]] = []
        self.dumped: list[str] = []  # the runs whose JSON was made
        self.alerts = Alerts(
            LiveConfig(parse_config(CONFIG, tmp_path / "c.toml")),
            store,
            FakeClock(at=T0),
            node="n1",
            base_url=None,
            run_json=self.run_json,
            on_outcome=lambda *_: None,
            send=self.send,
            logs_dir=self.logs_dir,
        )

    def run_json(self, run: RunRecord) -> dict[str, Any]:
        self.dumped.append(run.id)
        return {"id": run.id, "attempt": run.attempt}

    async def send(self, target: NotifyConfig, event: Mapping[str, Any]) -> None:
        self.sent.append((str(target.events), event))

    def write_log(self, run_id: str, data: bytes, secret: str | None = None) -> int:
        masker = SecretMasker([secret] if secret else [])
        writer = LogWriter(
            index_path(self.logs_dir, run_id),
            max_size=1 << 20,
            mode="drop_new",
            now=lambda: datetime.now(UTC),
            masker=masker,
        )
        writer.feed("stdout", data)
        return writer.finish().size

    async def events(self) -> list[tuple[str, Any]]:
        await self.alerts.ends.settled()
        for _ in range(20):
            await asyncio.sleep(0)
        for courier in self.alerts.couriers.values():
            await courier._queue.join()
        return [(e["event"], e["output"]) for _, e in self.sent]


def ended(task: str, run_id: str, size: int, **values: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "id": run_id,
        "task_name": task,
        "status": "ended",
        "end_reason": "success",
        "exit_code": 0,
        "triggered_by": "api",
        "created_at": T0,
        "node": "n1",
        "task_hash": "h",
        "log_size": size,
    }
    return RunRecord(**{**fields, **values})


RUN1 = "00000000-0000-7000-8000-000000000001"
RUN2 = "00000000-0000-7000-8000-000000000002"


async def test_a_run_that_printed_is_told_with_its_masked_output(
    store: Store, tmp_path: Path
) -> None:
    life = Sent(store, tmp_path)
    size = life.write_log(RUN1, b"disk at 91%\ntoken=hunter2-secret\n", secret="hunter2-secret")
    life.alerts.on_change("run.ended", ended("report", RUN1, size))
    assert await life.events() == [
        ("run.output", {"text": "disk at 91%\ntoken=***\n", "size": size, "truncated": False})
    ]
    assert [e["run"] for _, e in life.sent] == [{"id": RUN1, "attempt": 1}]


async def test_a_quiet_run_and_a_task_without_a_run_output_target_raise_nothing(
    store: Store, tmp_path: Path
) -> None:
    life = Sent(store, tmp_path)
    life.alerts.on_change("run.ended", ended("report", RUN1, 0))
    size = life.write_log(RUN2, b"printed\n")
    life.alerts.on_change("run.ended", ended("paged", RUN2, size))  # pager: run.failed only
    assert await life.events() == []
    # and no run's JSON was made for nothing: 10,000 ends in a minute paid two dumps each
    assert life.dumped == []


async def test_an_attempt_to_be_retried_tells_its_output_but_not_yet_its_failure(
    store: Store, tmp_path: Path
) -> None:
    life = Sent(store, tmp_path)
    size = life.write_log(RUN1, b"first try\n")
    life.alerts.on_change(
        "run.ended", ended("report", RUN1, size, end_reason="failed", exit_code=1)
    )
    output = {"text": "first try\n", "size": size, "truncated": False}
    assert await life.events() == [("run.output", output)]
    size = life.write_log(RUN2, b"second try\n")
    last = ended("report", RUN2, size, end_reason="failed", exit_code=1, attempt=2)
    life.alerts.on_change("run.ended", last)
    output2 = {"text": "second try\n", "size": size, "truncated": False}
    assert (await life.events())[1:] == [("run.failed", output2), ("run.output", output2)]


async def test_a_failure_alert_carries_the_output_also_to_a_target_without_run_output(
    store: Store, tmp_path: Path
) -> None:
    life = Sent(store, tmp_path)
    size = life.write_log(RUN1, b"no space left\n")
    life.alerts.on_change("run.ended", ended("paged", RUN1, size, end_reason="failed", exit_code=2))
    output = {"text": "no space left\n", "size": size, "truncated": False}
    assert await life.events() == [("run.failed", output)]
