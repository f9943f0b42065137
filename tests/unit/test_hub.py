"""The hub tells every subscriber of a topic, in order, and one failing subscriber
neither stops the others nor reaches the publisher."""

from __future__ import annotations

from datetime import UTC, datetime

from structlog.testing import capture_logs

from cronwarden.hub import Hub
from cronwarden.model import Status, Trigger
from cronwarden.run_record import RunRecord


def a_run() -> RunRecord:
    return RunRecord(
        id="00000000-0000-7000-8000-000000000001",
        task_name="backup",
        status=Status.ENDED,
        triggered_by=Trigger.API,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        node="n",
        task_hash="h",
    )


def test_subscribers_are_told_in_subscription_order() -> None:
    hub = Hub()
    told: list[tuple[str, str, str]] = []
    hub.runs.subscribe(lambda kind, run: told.append(("first", kind, run.id)))
    hub.runs.subscribe(lambda kind, run: told.append(("second", kind, run.id)))
    run = a_run()
    hub.runs.publish("run.started", run)
    hub.runs.publish("run.ended", run)
    assert told == [
        ("first", "run.started", run.id),
        ("second", "run.started", run.id),
        ("first", "run.ended", run.id),
        ("second", "run.ended", run.id),
    ]


def test_topics_are_separate() -> None:
    hub = Hub()
    runs: list[str] = []
    tasks: list[tuple[str, str]] = []
    reloads: list[dict[str, object]] = []
    hub.runs.subscribe(lambda kind, _run: runs.append(kind))
    hub.tasks.subscribe(lambda kind, name: tasks.append((kind, name)))
    hub.reloads.subscribe(lambda _kind, answer: reloads.append(answer))
    hub.tasks.publish("task.paused", "backup")
    hub.tasks.publish("task.resumed", "backup")
    hub.reloads.publish("config.reloaded", {"added": ["a"]})
    assert runs == []
    assert tasks == [("task.paused", "backup"), ("task.resumed", "backup")]
    assert reloads == [{"added": ["a"]}]


def test_a_failing_subscriber_is_logged_and_the_others_are_still_told() -> None:
    hub = Hub()
    told: list[str] = []

    def broken(kind: str, name: str) -> None:
        raise RuntimeError("a bug")

    hub.tasks.subscribe(broken)
    hub.tasks.subscribe(lambda kind, name: told.append(name))
    with capture_logs() as logs:
        hub.tasks.publish("task.paused", "backup")  # does not raise
    assert told == ["backup"]
    [failure] = [entry for entry in logs if entry["event"] == "hub.subscriber_failed"]
    assert failure["kind"] == "task.paused"
    assert "broken" in failure["subscriber"]


def test_an_unsubscribed_callable_is_no_longer_told() -> None:
    hub = Hub()
    told: list[str] = []

    def listener(kind: str, name: str) -> None:
        told.append(name)

    hub.tasks.subscribe(listener)
    hub.tasks.publish("task.paused", "a")
    hub.tasks.unsubscribe(listener)
    hub.tasks.unsubscribe(listener)  # twice: no error
    hub.tasks.publish("task.paused", "b")
    assert told == ["a"]


def test_publishing_with_no_subscriber_does_nothing() -> None:
    Hub().runs.publish("run.created", a_run())
