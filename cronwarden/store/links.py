"""How runs link to each other, read in one go for a run's detail (GET /api/runs/{id}
?expand=attempts,related).

* Attempts: a retry names the attempt it repeats (``retry_of``); the attempts of a fire
  are that chain, back to attempt 1 and on to the last retry.  Read with two recursive
  queries (up by primary key, down by the partial index on retry_of, migration 0014).
* Reruns: a rerun names the run it repeats (``rerun_of``, indexed the same way).
* Chains: a chained run names its cause or causes (``caused_by``,
  store/chaining.py); the runs a run's end started are found by that condition, as the
  run list's ``caused_by`` filter finds them.

Runs deleted by retention are simply not there: a chain then starts or stops where
the oldest or newest kept attempt is.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from cronwarden.model import Run
from cronwarden.store.chaining import caused_by_condition

RUNS = Run.__table__  # type: ignore[attr-defined]
# Reruns and chained runs listed per run at most (oldest first): a run is rarely rerun
# more than a few times, and a cause starts one run per following task.
MAX_LINKED = 1000


@dataclass(frozen=True)
class RelatedRuns:
    """The runs a run repeats, was repeated by, was started by, and started."""

    rerun_of: Run | None
    reruns: list[Run]
    caused_by: list[Run]
    chained: list[Run]


async def attempts_of(session: AsyncSession, run: Run) -> list[Run]:
    """Every attempt of ``run``'s fire, ``run`` among them, attempt 1 first."""
    up = sa.select(RUNS.c.id, RUNS.c.retry_of).where(RUNS.c.id == run.id).cte("up", recursive=True)
    up = up.union(sa.select(RUNS.c.id, RUNS.c.retry_of).join(up, RUNS.c.id == up.c.retry_of))
    down = sa.select(RUNS.c.id).where(RUNS.c.id == run.id).cte("down", recursive=True)
    down = down.union(sa.select(RUNS.c.id).join(down, RUNS.c.retry_of == down.c.id))
    chain = sa.union(sa.select(up.c.id), sa.select(down.c.id))
    query = (
        select(Run)
        .where(col(Run.id).in_(chain))
        .order_by(col(Run.attempt), col(Run.created_at), col(Run.id))
    )
    return list((await session.execute(query)).scalars())


async def related_to(session: AsyncSession, run: Run) -> RelatedRuns:
    async def runs(condition: sa.ColumnElement[bool]) -> list[Run]:
        query = (
            select(Run)
            .where(condition)
            .order_by(col(Run.created_at), col(Run.id))
            .limit(MAX_LINKED)
        )
        return list((await session.execute(query)).scalars())

    rerun_of = None if run.rerun_of is None else await session.get(Run, run.rerun_of)
    causes = [] if run.caused_by is None else run.caused_by.split(",")
    return RelatedRuns(
        rerun_of=rerun_of,
        reruns=await runs(col(Run.rerun_of) == run.id),
        caused_by=await runs(col(Run.id).in_(causes)) if causes else [],
        chained=await runs(caused_by_condition(run.id)),
    )
