"""An in-memory store: the dispatch core's store in unit tests, and the store of the
API served in-process by the tests.

It keeps the rules the SQL store keeps, and tests/contract/test_store_contract.py
holds both to them: a fire claimed once per (task_name, scheduled_for, attempt,
fire_node); an
Idempotency-Key owned by one run until it expires; an ended run final; a fire reserved
ahead of its instant as cronwarden/reservations.py says; writes either land whole or
raise StoreUnavailable.  So tests can drive the real dispatcher, scheduler and
handlers through every state with a fake clock and no database.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import namedtuple
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cronwarden.chains import ChainAsk
from cronwarden.errors import RunNotFound, StoreUnavailable
from cronwarden.model import Run, Status, TaskState, utcnow
from cronwarden.outcomes import RAN_TO_AN_OUTCOME
from cronwarden.reservations import is_listed, may_discard, may_take_over
from cronwarden.run_record import RunRecord, run_row
from cronwarden.run_sorts import NULLABLE_SORTS
from cronwarden.store.links import MAX_LINKED, RelatedRuns
from cronwarden.store.paging import Read, RunOrder, RunPage, read_page
from cronwarden.store.protocol import KeyClaim, KeyedRun
from cronwarden.store.runs import (
    DURATION_SAMPLE,
    NEVER_RAN,
    Attempt,
    CostTally,
    RunFilter,
    TaskTally,
)
from cronwarden.task_hash import new_key

_COLUMNS = tuple(c.name for c in Run.__table__.columns)  # type: ignore[attr-defined]
# A page's rows: named as the runs table's columns, as the SQL store's rows are.
_RunRow = namedtuple("_RunRow", _COLUMNS)  # type: ignore[misc]


@dataclass
class _Key:
    run_id: str
    fingerprint: str
    created_at: datetime


@dataclass
class _Failing:
    """What /health reads of the SQL store's recorder; the double's writes never fail
    for lack of disk."""

    failing: str | None = None


class _StateRows:
    """Each task's state and the installation key, as the SQL store's StateRows."""

    states: dict[str, TaskState]
    hash_key: bytes

    runs: dict[str, Run]

    async def _write(self) -> None:
        raise NotImplementedError

    async def last_scheduled_for(self) -> dict[str, datetime]:
        anchors: dict[str, datetime] = {}
        fires = [(r.task_name, r.scheduled_for) for r in self.runs.values()]
        fires += [(s.task_name, s.last_scheduled_for) for s in self.states.values()]
        for name, when in fires:
            if when is not None and (name not in anchors or when > anchors[name]):
                anchors[name] = when
        return anchors

    async def installation_key(self) -> bytes:
        return self.hash_key

    # -- task state (the scheduler's TaskStateStore; alerts) --------------------------

    async def task_states(self) -> dict[str, TaskState]:
        return {name: state.model_copy() for name, state in self.states.items()}

    async def save_task_state(self, task_name: str, **values: Any) -> None:
        """An upsert, as the SQL store's: fields not named keep their values."""
        await self._write()
        state = self.states.get(task_name) or TaskState(task_name=task_name)
        for name, value in {**values, "updated_at": utcnow()}.items():
            setattr(state, name, value)
        self.states[task_name] = state

    async def own_fires(self, node: str, task_names: list[str]) -> dict[str, datetime]:
        anchors: dict[str, datetime] = {}
        names = set(task_names)
        for run in self.runs.values():
            when, name = run.scheduled_for, run.task_name
            if run.fire_node == node and name in names and when is not None:
                anchors[name] = max(when, anchors.get(name, when))
        return anchors

    # -- reads of the API ------------------------------------------------------------


@dataclass
class MemoryStore(_StateRows):
    runs: dict[str, Run] = field(default_factory=dict)
    keys: dict[tuple[str, str], _Key] = field(default_factory=dict)
    states: dict[str, TaskState] = field(default_factory=dict)
    unavailable: bool = False  # set to make every write fail as during an outage
    writes: int = 0
    hash_key: bytes = field(default_factory=new_key, repr=False)
    now: Callable[[], datetime] = utcnow  # what "reserved ahead" is measured against
    recorder: _Failing = field(default_factory=_Failing, repr=False)

    # -- RunRecords ---------------------------------------------------------------

    async def claim(self, runs: Sequence[RunRecord]) -> set[str]:
        await self._write()
        taken: dict[tuple[str, datetime | None, int, str], Run] = {
            (r.task_name, r.scheduled_for, r.attempt, r.fire_node): r
            for r in self.runs.values()
            if r.scheduled_for is not None
        }
        claimed = set()
        for run in runs:
            fire = (run.task_name, run.scheduled_for, run.attempt, run.fire_node)
            held = taken.get(fire) if run.scheduled_for is not None else None
            # Another's claim, or a run under way, unless a reservation it may take over.
            if held is not None and not may_take_over(held, run.node):
                continue
            if held is not None:
                del self.runs[held.id]
            stored = taken[fire] = _stored(run)
            self.runs[run.id] = stored
            claimed.add(run.id)
        return claimed

    async def claim_keyed(self, run: RunRecord, key: KeyClaim) -> str:
        await self._write()
        held = self.keys.get((key.task_name, key.key))
        if held is not None and held.created_at >= key.expired_before:
            return held.run_id
        self.keys[(key.task_name, key.key)] = _Key(run.id, key.fingerprint, key.created_at)
        self.runs[run.id] = _stored(run)
        return run.id

    async def find_key(self, task_name: str, key: str, since: datetime) -> KeyedRun | None:
        held = self.keys.get((task_name, key))
        # The SQL store joins the key to its run: a key whose run is gone finds nothing.
        if held is None or held.created_at < since or held.run_id not in self.runs:
            return None
        return KeyedRun(run=_copy(self.runs[held.run_id]), fingerprint=held.fingerprint)

    async def record(self, run_id: str, values: Mapping[str, Any]) -> None:
        """As the SQL store's update: an unknown id changes nothing, and neither does a
        write to a run that has ended (it is final: another node may have ended it)."""
        await self._write()
        run = self.runs.get(run_id)
        if run is None or run.status == Status.ENDED:
            return
        for name, value in values.items():
            setattr(run, name, value)

    async def record_end(
        self, run_id: str, values: Mapping[str, Any], asks: Sequence[ChainAsk]
    ) -> list[dict[str, Any]]:
        """As the SQL store (store/chaining.py): the end, then the chained runs, each
        once per cause; none if the run had ended otherwise."""
        await self.record(run_id, values)
        run = self.runs.get(run_id)
        if run is None or run.end_reason != values.get("end_reason"):
            return []
        created = []
        for ask in asks:
            cause = run_id if ask.mode == "any" else self._all_causes(ask)
            task_name = ask.row["task_name"]
            if cause is None or any(
                r.task_name == task_name and r.caused_by == cause for r in self.runs.values()
            ):
                continue
            row = {**ask.row, "caused_by": cause}
            self.runs[row["id"]] = Run(**row)
            created.append(row)
        return created

    def _all_causes(self, ask: ChainAsk) -> str | None:
        """As store/chaining.py: the latest counting end of each listed task, once
        none of them is a cause of an earlier run of the chained task."""
        task_name = ask.row["task_name"]
        used = {
            cause
            for r in self.runs.values()
            if r.task_name == task_name and r.caused_by
            for cause in r.caused_by.split(",")
        }
        causes = []
        for cause_task in ask.after:
            ends = [
                r
                for r in self.runs.values()
                if r.task_name == cause_task
                and r.status == Status.ENDED
                and r.end_reason in ask.after_on
                and r.end_at is not None
            ]
            if not ends:
                return None
            latest = max(ends, key=_end_at).id
            if latest in used:
                return None
            causes.append(latest)
        return ",".join(sorted(causes))

    async def report(self, run_id: str, values: Mapping[str, Any]) -> bool:
        """As the SQL store: written unless the run has ended (or is unknown)."""
        await self._write()
        run = self.runs.get(run_id)
        if run is None or run.status == Status.ENDED:
            return False
        for name, value in values.items():
            setattr(run, name, value)
        return True

    async def discard_reserved(self, run_ids: Sequence[str]) -> None:
        await self._write()
        for run_id in run_ids:
            if run_id in self.runs and may_discard(self.runs[run_id]):
                del self.runs[run_id]

    async def get_run(self, run_id: str) -> Run:
        try:
            return _copy(self.runs[run_id])
        except KeyError:
            raise RunNotFound(f"no run has the id {run_id}") from None

    async def attempts_of(self, run: Run) -> list[Run]:
        """The SQL store's attempt chain: back along retry_of, on through the retries."""
        chain = {run.id}
        at = self.runs.get(run.id, run)
        while at.retry_of is not None and at.retry_of in self.runs:
            chain.add(at.retry_of)
            at = self.runs[at.retry_of]
        grown = True
        while grown:
            later = {r.id for r in self.runs.values() if r.retry_of in chain}
            grown = not later <= chain
            chain |= later
        found = [self.runs[i] for i in chain if i in self.runs]
        return [_copy(r) for r in sorted(found, key=lambda r: (r.attempt, r.created_at, r.id))]

    async def related_to(self, run: Run) -> RelatedRuns:
        def runs(chosen: Callable[[Run], bool]) -> list[Run]:
            found = sorted((r for r in self.runs.values() if chosen(r)), key=_created)
            return [_copy(r) for r in found[:MAX_LINKED]]

        causes = (run.caused_by or "").split(",")
        return RelatedRuns(
            rerun_of=_copy(self.runs[run.rerun_of]) if run.rerun_of in self.runs else None,
            reruns=runs(lambda r: r.rerun_of == run.id),
            caused_by=runs(lambda r: r.id in causes),
            chained=runs(lambda r: run.id in (r.caused_by or "").split(",")),
        )

    async def unfinished_runs(self, node: str) -> list[Run]:
        return [
            _copy(r)
            for r in self.runs.values()
            if r.node == node and r.status in (Status.PENDING, Status.RUNNING)
        ]

    async def ping(self) -> None:
        if self.unavailable:
            raise StoreUnavailable("the database is unavailable: (simulated outage)")

    async def run_count(self) -> int:
        return len(self.runs)

    async def last_successes(self) -> dict[str, datetime]:
        ends: dict[str, datetime] = {}
        for run in self.runs.values():
            if run.end_reason == "success" and run.end_at is not None:
                known = ends.get(run.task_name)
                ends[run.task_name] = run.end_at if known is None else max(known, run.end_at)
        return ends

    async def recent_attempts(
        self, task_name: str, limit: int, before: tuple[datetime, str] | None = None
    ) -> list[Attempt]:
        found = sorted(
            (
                r
                for r in self.runs.values()
                if r.task_name == task_name
                and (before is None or (r.created_at, r.id) < before)
                and r.end_reason not in NEVER_RAN
            ),
            key=lambda r: (r.created_at, r.id),
            reverse=True,
        )
        return [
            Attempt(r.id, r.created_at, r.end_at, r.end_reason, r.retry_of) for r in found[:limit]
        ]

    async def last_runs(self, task_names: Collection[str] | None = None) -> dict[str, Run]:
        newest: dict[str, Run] = {}
        for run in self._existing():
            if task_names is not None and run.task_name not in task_names:
                continue
            known = newest.get(run.task_name)
            if known is None or run.created_at > known.created_at:
                newest[run.task_name] = run
        return {name: _copy(run) for name, run in newest.items()}

    async def task_tally(self, task_name: str, since: datetime | None) -> TaskTally:
        window = [
            r
            for r in self._existing()
            if r.task_name == task_name and (since is None or r.created_at >= since)
        ]
        counts: dict[tuple[str, str | None], int] = {}
        last_end: dict[str, datetime] = {}
        longest: dict[str, int] = {}
        for run in window:
            counts[(run.status, run.end_reason)] = counts.get((run.status, run.end_reason), 0) + 1
            reason = run.end_reason
            if reason and run.end_at is not None:
                last_end[reason] = max(last_end.get(reason, run.end_at), run.end_at)
            if reason and run.duration_ms is not None:
                longest[reason] = max(longest.get(reason, run.duration_ms), run.duration_ms)
        ran = [
            r
            for r in sorted(window, key=lambda r: r.created_at, reverse=True)
            if r.end_reason in RAN_TO_AN_OUTCOME and r.duration_ms is not None
        ]
        sample = ran[:DURATION_SAMPLE]
        return TaskTally(
            counts=counts,
            last_end=last_end,
            longest=longest,
            durations=[r.duration_ms for r in sample if r.duration_ms is not None],
            cost=_cost_of(window),
            peaks=[r.max_rss_bytes for r in sample if r.max_rss_bytes is not None],
        )

    async def list_runs(
        self,
        where: RunFilter,
        *,
        limit: int,
        cursor: str | None = None,
        offset: int = 0,
        ascending: bool = False,
        with_total: bool = False,
        sort_field: str = "created_at",
    ) -> RunPage:
        """The SQL store's pages: the same order (runs without a value in a nullable
        sort field last), the same cursors and reads (store/paging.py), the same filters."""
        order = RunOrder(sort_field, ascending)
        position = None if cursor is None else order.decode(cursor)
        now = self.now()

        def fetch(read: Read, wanted: int, skip: int) -> list[Any]:
            listed = [r for r in self._existing(read.as_of or now) if _matches(r, where)]
            ordered = _in_order(listed, sort_field, ascending)
            if read.backward:
                assert read.start is not None
                ordered = [r for r in ordered if _before(r, read.start, sort_field, ascending)]
                ordered.reverse()
            elif read.start is not None:
                start = read.start
                ordered = [
                    r
                    for r in ordered
                    if _after(r, start, sort_field, ascending)
                    or (read.inclusive and _position(r, sort_field) == start)
                ]
            if read.stop is not None:
                stop = read.stop
                ordered = [r for r in ordered if _before(r, stop, sort_field, ascending)]
            return [_row(r) for r in ordered[skip : skip + wanted + 1]]  # rows, as the SQL's

        page = read_page(fetch, order, position, limit=limit, offset=offset, now=now)
        if with_total:
            page.total = sum(1 for r in self._existing(now) if _matches(r, where))
        return page

    # -- internals --------------------------------------------------------------------

    def _existing(self, now: datetime | None = None) -> Iterable[Run]:
        """Runs that exist by ``now`` (not a reservation whose instant is ahead)."""
        now = self.now() if now is None else now
        return (r for r in self.runs.values() if is_listed(r, now))

    async def _write(self) -> None:
        await asyncio.sleep(0)  # a real commit yields to the loop; so does this
        if self.unavailable:
            raise StoreUnavailable("the database is unavailable: (simulated outage)")
        self.writes += 1


def _created(run: Run) -> tuple[datetime, str]:
    return run.created_at, run.id


def _copy(run: Run) -> Run:
    """What a database hands back is never the caller's own object."""
    return run.model_copy(deep=True)


def _cost_of(runs: list[Run]) -> CostTally:
    costed = [r for r in runs if r.cpu_user_s is not None]
    return CostTally(
        runs=len(costed),
        cpu_user_s=sum(r.cpu_user_s or 0 for r in costed),
        cpu_system_s=sum(r.cpu_system_s or 0 for r in costed),
        max_rss_bytes=max(
            (r.max_rss_bytes for r in runs if r.max_rss_bytes is not None), default=None
        ),
        output_bytes=sum(r.output_bytes or 0 for r in runs),
    )


def _stored(record: RunRecord) -> Run:
    """The row a claim writes, as the store's own Run (never the caller's record)."""
    return Run(**_own(run_row(record)))


def _row(run: Run) -> Any:
    """A run as a row of the runs table (a page is rows, not Run instances)."""
    return _RunRow(**_own({name: getattr(run, name) for name in _COLUMNS}))


def _own(values: dict[str, Any]) -> dict[str, Any]:
    """Column values with containers of their own (a database hands back copies)."""
    for name in ("params", "tags", "run_metadata"):
        values[name] = copy.deepcopy(values[name])
    return values


def _matches(run: Run, where: RunFilter) -> bool:
    checks = (
        where.task_name is None or run.task_name == where.task_name,
        not where.status or run.status in where.status,
        not where.end_reason or run.end_reason in where.end_reason,
        not where.triggered_by or run.triggered_by in where.triggered_by,
        where.start_date is None or run.created_at >= where.start_date,
        where.end_date is None or run.created_at <= where.end_date,
        not where.search or where.search.casefold() in _searched_text(run),
        where.caused_by is None or where.caused_by in (run.caused_by or "").split(","),
        not where.tags or set(where.tags) <= set(run.tags),
    )
    return all(checks)


def _searched_text(run: Run) -> str:
    """What a search looks in (store/search.py): the task name, the error, the params,
    the tags."""
    text = f"{run.task_name} {run.error or ''} {json.dumps(run.params)} {json.dumps(run.tags)}"
    return text.casefold()


def _key(run: Run, sort_field: str) -> tuple[Any, ...]:
    tail = (run.created_at.astimezone(UTC), run.id)
    if sort_field == "created_at":
        return tail
    value = getattr(run, sort_field)
    return (value.astimezone(UTC) if isinstance(value, datetime) else value, *tail)


def _in_order(runs: list[Run], sort_field: str, ascending: bool) -> list[Run]:
    """Runs with a value in the sort field, then those without (by created_at, id)."""
    nullable = sort_field in NULLABLE_SORTS
    valued = [r for r in runs if not nullable or getattr(r, sort_field) is not None]
    empty = [r for r in runs if nullable and getattr(r, sort_field) is None]
    valued.sort(key=lambda r: _key(r, sort_field), reverse=not ascending)
    empty.sort(key=lambda r: _key(r, "created_at"), reverse=not ascending)
    return valued + empty


def _position(run: Run, sort_field: str) -> list[Any]:
    """A run's key in a sort, as a cursor holds it."""
    return list(_key(run, sort_field))


def _before(run: Run, position: list[Any], sort_field: str, ascending: bool) -> bool:
    """Whether ``run`` comes before a cursor's position in this order."""
    at = _position(run, sort_field) == position
    return not at and not _after(run, position, sort_field, ascending)


def _after(run: Run, position: list[Any], sort_field: str, ascending: bool) -> bool:
    """Whether ``run`` comes after a cursor's position in this order."""
    value_missing = sort_field in NULLABLE_SORTS and getattr(run, sort_field) is None
    if sort_field in NULLABLE_SORTS and position[0] is None:  # the cursor is among the empty
        if not value_missing:
            return False
        mine, theirs = _key(run, "created_at"), tuple(position[1:])
    elif value_missing:
        return True  # the empty come after every run with a value
    else:
        mine, theirs = _key(run, sort_field), tuple(position)
    return mine > theirs if ascending else mine < theirs


def _end_at(run: Run) -> datetime:
    assert run.end_at is not None  # ended runs only
    return run.end_at
