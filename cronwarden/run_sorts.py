"""The fields a run list can be sorted by (kept free of imports: the CLI offers them
without loading the store)."""

SORT_FIELDS = (
    "created_at",
    "task_name",
    "status",
    "start_at",
    "end_at",
    "exit_code",
    "duration_ms",
)
# Fields a run may have no value in (not started, not ended): such runs sort last.
NULLABLE_SORTS = ("start_at", "end_at", "exit_code", "duration_ms")
