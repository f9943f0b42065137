"""Two builds of the daemon side by side, under one load at the same time: B against A.

    python benchmarks/paired.py A_TREE B_TREE [--load api|minute] [--rounds 4]
        [--seconds 10] [--clients 8] [--tasks 5000] [--soon]

A_TREE and B_TREE are cronwarden source trees (a checkout, or a ``git worktree`` of an
older commit); each daemon runs from its own (PYTHONPATH).  This machine's speed drifts
by half from one minute to the next (raw spawning of the same 10,000 processes took
19-36 s in consecutive passes), so two builds measured one after the other differ by
more than most changes do.  Here both daemons run at once under the same load: the
drift slows both alike, and B/A holds where each figure alone moves.  Each round swaps
which daemon is started and served first; an A/A run (one tree twice) shows what is
left of that order's bias (~3 % in runs a second here).

* ``--load api``: ``--clients`` HTTP clients for each daemon, POSTing
  ``/api/tasks/t/runs?wait=60`` (``/bin/true``) for ``--seconds``, as sustained.py does:
  runs a second, and each daemon's CPU a run (its own, its reaped children's: the runs,
  and its keeper's).
* ``--load minute``: ``--tasks`` tasks on ``* * * * *`` in each daemon (as minute.py),
  at the next minute's boundary (``--soon``: a second a few seconds away): each one's
  all-started time after the boundary, and its CPU a run over the minute.

Printed for each round: both builds' figures and B/A; then B/A's median over the
rounds.  Not a target's figure: each daemon has half of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from _daemon import running_daemon
from minute import (
    MARGIN,
    SOON,
    minute_figures,
    next_boundary,
    next_soon_fire,
    raise_fd_limit,
    run_rows,
    soon_schedule,
    wait_all_ended,
    wait_until,
    write_config,
)
from sustained import daemon_cpu, through_api
from sustained import write_config as api_config

Figures = tuple[float, float]  # the load's figure, CPU ms a run


def api_round(work: list[Path], trees: list[Path], args: argparse.Namespace) -> list[Figures]:
    with ExitStack() as stack:
        daemons = []
        for workdir, tree in zip(work, trees, strict=True):
            config = api_config(workdir)
            daemons.append(stack.enter_context(running_daemon(workdir, config, source=tree)))
        before = [daemon_cpu(proc.pid) for _, proc in daemons]
        got = asyncio.run(_both_loaded([base for base, _ in daemons], args))
        figures = []
        for (_, proc), cpu, (rate, _, count) in zip(daemons, before, got, strict=True):
            figures.append((rate, (daemon_cpu(proc.pid) - cpu) * 1000 / max(1, count)))
        return figures


async def _both_loaded(bases: list[str], args: argparse.Namespace) -> list[tuple[float, int, int]]:
    return list(await asyncio.gather(*(through_api(b, args.seconds, args.clients) for b in bases)))


def minute_round(work: list[Path], trees: list[Path], args: argparse.Namespace) -> list[Figures]:
    schedule = soon_schedule(SOON + 5) if args.soon else "* * * * *"  # two starts: 5 s more
    with ExitStack() as stack:
        daemons = []
        for workdir, tree in zip(work, trees, strict=True):
            config = write_config(workdir, args.tasks, schedule)
            daemons.append(stack.enter_context(running_daemon(workdir, config, source=tree)))
        boundary = next_soon_fire(schedule) if args.soon else next_boundary(MARGIN, soon=False)
        wait_until(boundary - 3)
        before = [daemon_cpu(proc.pid) for _, proc in daemons]
        figures = []
        for workdir, (_, proc), cpu in zip(work, daemons, before, strict=True):
            db = workdir / "data" / "cronwarden.db"
            wait_all_ended(db, boundary, boundary + 1, args.tasks, deadline=boundary + 300)
            got = minute_figures(run_rows(db, boundary, boundary + 1), boundary, 1.0)
            if got["rows"] != args.tasks:
                raise SystemExit(f"{workdir}: {got['rows']} runs of {args.tasks} recorded")
            figures.append((got["all_started"], (daemon_cpu(proc.pid) - cpu) * 1000 / args.tasks))
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, help="build A's source tree")
    parser.add_argument("b", type=Path, help="build B's source tree")
    parser.add_argument("--load", choices=["api", "minute"], default="api")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10, help="api: the load's window")
    parser.add_argument("--clients", type=int, default=8, help="api: clients for each daemon")
    parser.add_argument("--tasks", type=int, default=5000, help="minute: tasks in each daemon")
    parser.add_argument("--soon", action="store_true", help="minute: fire a few seconds away")
    args = parser.parse_args()
    trees = [args.a.resolve(), args.b.resolve()]
    for tree in trees:  # else the daemon would quietly run the installed package
        if not (tree / "cronwarden" / "__init__.py").is_file():
            parser.error(f"{tree} is not a cronwarden source tree (no cronwarden/__init__.py)")
    raise_fd_limit(4 * args.tasks)
    measure = api_round if args.load == "api" else minute_round
    unit = "runs/s" if args.load == "api" else "s all started"
    print(f"paired {args.load}: A {trees[0]}, B {trees[1]}, {args.rounds} rounds")
    ratios: list[Figures] = []
    for round_ in range(args.rounds):
        order = [0, 1] if round_ % 2 == 0 else [1, 0]  # which daemon starts first
        with tempfile.TemporaryDirectory(prefix="cw-paired-") as tmp:
            work = [Path(tmp) / name for name in ("first", "second")]
            for workdir in work:
                workdir.mkdir()
            got = measure(work, [trees[i] for i in order], args)
        a, b = (got[order.index(i)] for i in (0, 1))
        ratios.append((b[0] / a[0], b[1] / a[1]))
        print(
            f"  round {round_ + 1} ({'AB'[order[0]]} first): "
            f"A {a[0]:.2f} {unit}, {a[1]:.2f} ms CPU a run | "
            f"B {b[0]:.2f} {unit}, {b[1]:.2f} ms CPU a run | "
            f"B/A {ratios[-1][0]:.3f}, CPU {ratios[-1][1]:.3f}",
            flush=True,
        )
        time.sleep(1)
    print(
        f"  median B/A over {len(ratios)} round{'s' * (len(ratios) != 1)}: {unit} "
        f"{statistics.median(r[0] for r in ratios):.3f}, "
        f"CPU a run {statistics.median(r[1] for r in ratios):.3f}"
    )


if __name__ == "__main__":
    main()
