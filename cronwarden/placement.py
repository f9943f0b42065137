"""Where a task runs: the nodes that may run it (``nodes``, globs over node names) and
which fires are a node's own (``on_every_node``).

A node whose name matches none of a task's patterns neither times the task (its
scheduler leaves it out: no timer, no reservation, no catch-up) nor accepts a trigger
of it (409, naming the patterns: a trigger is not forwarded, so that what runs where
stays what the caller asked of the node it reached).

An ordinary fire is one run across all nodes: its row's ``fire_node`` is "" and the
unique (task_name, scheduled_for, attempt, fire_node) makes the first node's insert the
only one.  An on_every_node fire is one run per node: ``fire_node`` is the node's name,
so each node claims its own row of the same fire (reservations included: a node's row
only ever meets its own reservation), and its overlap and max_concurrent hold per
node (runners/gate.py, runners/places.py).  Such a run belongs to its node: a survivor that
takes over a dead node ends its runs as crashed but neither retries them nor moves its
waiting retries (a log cleanup of one host is no job for another; the waiting retry
runs when the node comes back under the same name).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from cronwarden.config import TaskConfig

ANY_NODE = ""  # fire_node of an ordinary fire: one run whichever node claims it


def runs_on(task: TaskConfig, node: str) -> bool:
    """Whether ``node`` may fire or start runs of ``task``."""
    return task.nodes is None or any(fnmatchcase(node, pattern) for pattern in task.nodes)


def fire_node(task: TaskConfig, node: str) -> str:
    """The ``fire_node`` of this node's row of a scheduled fire of ``task``."""
    return node if task.on_every_node else ANY_NODE


def not_here(task: TaskConfig, node: str) -> str:
    """Why ``node`` refuses a run of ``task`` (a 409's detail)."""
    patterns = ", ".join(repr(p) for p in task.nodes or ())
    return (
        f"task {task.name!r} runs only on nodes matching {patterns}, and this node is "
        f"{node!r}; send the request to one of those nodes (GET /api/nodes lists them)"
    )
