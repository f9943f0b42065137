"""New run rows, as every start path makes them: pending, stamped with this node, the
clock's now and the hash of the definition they run, each with a report token of its
own (its hash in the row, the token kept on the record for the spawn)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import uuid6

from cronwarden.config import TaskConfig
from cronwarden.live_config import LiveConfig
from cronwarden.model import Status, Trigger
from cronwarden.placement import ANY_NODE, fire_node
from cronwarden.run_record import RunRecord
from cronwarden.run_tags import run_tags
from cronwarden.run_tokens import new_token, token_digest
from cronwarden.support.clock import Clock


class NewRuns:
    def __init__(self, config: LiveConfig, clock: Clock, node: str) -> None:
        self._config = config
        self._clock = clock
        self._node = node

    @property
    def node(self) -> str:
        """The node the rows are stamped with: this one."""
        return self._node

    def __call__(
        self,
        task: TaskConfig,
        trigger: Trigger,
        *,
        scheduled_for: datetime | None = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        attempt: int = 1,
        retry_of: str | None = None,
        rerun_of: str | None = None,
        of_fire_node: str | None = None,
        delayed_until: datetime | None = None,
        expires_at: datetime | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """A new pending row.  A scheduled fire's row is this node's own when the task
        runs on every node (cronwarden/placement.py); a retry keeps the fire_node of
        the run it repeats (``of_fire_node``).  Every row gets its task's tags, then
        ``tags`` (a trigger's, or those of the run it repeats), each once."""
        if of_fire_node is None:
            of_fire_node = ANY_NODE if scheduled_for is None else fire_node(task, self._node)
        run_id = str(uuid6.uuid7())
        token = new_token(run_id)
        return RunRecord(
            id=run_id,
            task_name=task.name,
            status=Status.PENDING,
            triggered_by=trigger,
            scheduled_for=scheduled_for,
            created_at=self._clock.now(),
            attempt=attempt,
            retry_of=retry_of,
            rerun_of=rerun_of,
            params=dict(params or {}),
            idempotency_key=idempotency_key,
            node=self._node,
            fire_node=of_fire_node,
            task_hash=self._config.task_hash(task),
            not_before=delayed_until,
            delayed_until=delayed_until,
            expires_at=expires_at,
            tags=run_tags(task.tags, tags),
            run_metadata=dict(metadata or {}),
            report_token=token,
            report_token_sha256=token_digest(token),
        )
