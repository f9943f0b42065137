"""What a small daemon imports by READY, module by module, and the RSS each import adds.

    python benchmarks/imports.py [--tasks 10] [--daemon-python PATH] [--modules 25] [--without PKGS]

The daemon gets N tasks (SQLite, cron lines as startup.py writes them) and is started
twice on the same data directory with ``-X importtime``: a first start (it migrates a
fresh database) and a restart (the schema is current).  READY is read off a real
NOTIFY_SOCKET datagram, its RSS from /proc; the modules it had imported by then are the
ones importtime listed before READY.

Then a fresh interpreter (the same one) imports the first start's modules again, one at
a time in the order they finished loading (a module after the modules it imports), and
reads its RSS after each: the MB a module adds, summed per package (cronwarden per
subpackage).  What is left between the last import and READY is what the daemon builds
(its config, engine, app and scheduler).

``--without`` estimates a daemon without some packages (SQLAlchemy's by default): the
same imports replayed without them and without cronwarden's modules (which import
them), plus cronwarden's own modules and what the daemon builds, as measured.

The baseline, measured in the same run: the bare interpreter's RSS (``python -c pass``,
site included).  The target (issue 30): RSS at READY <= 60 MB with 10 tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections import defaultdict
from pathlib import Path

from _daemon import free_port
from startup import rss_mb, write_config

TARGET_MB = 60.0
# importtime's lines: "import time: self [us] | cumulative | <indent>name"
LINE = re.compile(r"import time:\s+\d+ \|\s+\d+ \| *(\S+)$")
NOT_MODULES = {"__main__", "cronwarden.__main__"}
# What a daemon without SQLAlchemy would lack (--without): the ORM, its asyncio
# extension's greenlets, the SQLite driver's asyncio wrapper, sqlmodel on top.
SQLALCHEMY = ("sqlalchemy", "sqlmodel", "greenlet", "aiosqlite", "alembic", "mako")

REPLAY = textwrap.dedent(
    """
    import importlib, importlib.util, json, os, sys
    page = os.sysconf("SC_PAGE_SIZE")
    def rss():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page / 1e6
    rows = [("", rss(), True)]
    for name in json.load(sys.stdin):
        try:
            importlib.import_module(name)
            loaded = True
        except BaseException:  # an optional import the daemon tried and went without
            loaded = False
        rows.append((name, rss(), loaded))
    stdlib = sorted(sys.stdlib_module_names)
    # A module read from source instead of its .pyc is compiled at import: that costs
    # memory a real install does not (PYTHONDONTWRITEBYTECODE and a bare source tree).
    uncached = [
        name for name, module in list(sys.modules.items())
        if (getattr(module, "__file__", None) or "").endswith(".py")
        and not os.path.exists(importlib.util.cache_from_source(module.__file__))
    ]
    print(json.dumps({"rows": rows, "stdlib": stdlib, "uncached": uncached}))
    """
)


def start_to_ready(python: str, workdir: Path, config: Path) -> tuple[float, list[str]]:
    """One start with ``-X importtime``: RSS at READY and the modules imported by then."""
    notify = workdir / "notify.sock"
    notify.unlink(missing_ok=True)
    trace = workdir / "importtime.txt"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, open(trace, "wb") as err:
        sock.bind(str(notify))
        sock.settimeout(120)
        proc = subprocess.Popen(
            [python, "-X", "importtime", "-m", "cronwarden", "serve", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "NOTIFY_SOCKET": str(notify)},
        )
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            rss = rss_mb(proc.pid)
            lines = trace.read_text(errors="replace").splitlines()  # what it said by READY
        finally:
            proc.terminate()
            proc.wait(60)
    return rss, modules_of(lines)


def modules_of(lines: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for line in lines:
        match = LINE.match(line)
        if match and match[1] not in NOT_MODULES:
            seen.setdefault(match[1], None)
    return list(seen)


def replay(python: str, modules: list[str]) -> tuple[list[tuple[str, float, bool]], set[str]]:
    """Each module's import again, in order, with the interpreter's RSS after it."""
    done = subprocess.run(
        [python, "-c", REPLAY], input=json.dumps(modules), capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"the replay failed:\n{done.stderr}")
    answer = json.loads(done.stdout)
    if answer["uncached"]:
        print(
            f"warning: {len(answer['uncached'])} modules have no .pyc and were compiled at"
            f" import (e.g. {answer['uncached'][0]}): their figures are inflated"
        )
    return [tuple(row) for row in answer["rows"]], set(answer["stdlib"])


def bare_rss(python: str) -> float:
    code = "import os; print(open('/proc/self/statm').read().split()[1])"
    pages = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return int(pages.stdout) * os.sysconf("SC_PAGE_SIZE") / 1e6


def group_of(module: str, stdlib: set[str]) -> str:
    parts = module.split(".")
    if parts[0] == "cronwarden":
        return ".".join(parts[:2])
    if parts[0] in ("asyncio", "ssl", "_ssl", "email"):
        return parts[0].lstrip("_")
    if parts[0].lstrip("_") in stdlib or parts[0] in stdlib:
        return "(stdlib, the rest)"
    return parts[0]


def added(rows: list[tuple[str, float, bool]]) -> list[tuple[str, float]]:
    return [(name, rss - rows[i][1]) for i, (name, rss, loaded) in enumerate(rows[1:]) if loaded]


def grouped(costs: list[tuple[str, float]], stdlib: set[str]) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for name, mb in costs:
        group = groups[group_of(name, stdlib)]
        group[0] += mb
        group[1] += 1
    return groups


def without(python: str, modules: list[str], left_out: set[str]) -> float:
    """The RSS the same imports add without ``left_out``'s packages and cronwarden's own
    modules (they import those): what the rest of the stack weighs without them."""
    kept = [m for m in modules if m.split(".")[0] not in left_out | {"cronwarden"}]
    rows, _ = replay(python, kept)
    return rows[-1][1] - rows[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--modules", type=int, default=25, help="how many modules to list")
    parser.add_argument(
        "--without",
        default=",".join(SQLALCHEMY),
        help="packages whose absence is estimated (comma-separated; default SQLAlchemy's)",
    )
    parser.add_argument(
        "--daemon-python", default=sys.executable, help="the interpreter that runs the daemon"
    )
    args = parser.parse_args()
    python = args.daemon_python
    with tempfile.TemporaryDirectory(prefix="cw-imports-") as tmp:
        workdir = Path(tmp)
        config = write_config(workdir, free_port(), args.tasks)
        first_rss, first = start_to_ready(python, workdir, config)
        again_rss, again = start_to_ready(python, workdir, config)
    bare = bare_rss(python)
    rows, stdlib = replay(python, first)
    costs = added(rows)
    groups = grouped(costs, stdlib)
    left_out = set(args.without.split(","))
    print(f"what a daemon with {args.tasks} tasks imports by READY, on {python}")
    print(f"  bare interpreter RSS            {bare:7.2f} MB")
    print(f"  RSS at READY, first start       {first_rss:7.2f} MB  {len(first)} modules")
    print(f"  RSS at READY, restart           {again_rss:7.2f} MB  {len(again)} modules")
    print(
        f"  the imports, replayed in order  {rows[-1][1] - bare:7.2f} MB  over the bare interpreter"
    )
    print(f"  built after them, first start   {first_rss - rows[-1][1]:7.2f} MB")
    print(f"  target: RSS at READY <= {TARGET_MB:g} MB", end=" ")
    print("met" if max(first_rss, again_rss) <= TARGET_MB else "MISSED")
    estimate(python, first, groups, left_out, again_rss, bare)
    table(groups, {group_of(m, stdlib) for m in again}, bare)
    print(f"\n  the {args.modules} costliest modules (MB; a package's cost lands on its first")
    print("  module loaded, which imports its __init__)")
    for name, mb in sorted(costs, key=lambda item: -item[1])[: args.modules]:
        print(f"  {name:<52} {mb:>6.2f}")
    print("\n  ratio: MB / the bare interpreter's RSS")


def estimate(
    python: str,
    modules: list[str],
    groups: dict[str, list[float]],
    left_out: set[str],
    ready: float,
    bare: float,
) -> None:
    """What a daemon without ``left_out`` would weigh at READY: the stack's imports
    replayed without them, cronwarden's own modules and what the daemon builds as now."""
    rest = without(python, modules, left_out)
    own = sum(mb for name, (mb, _) in groups.items() if name.startswith("cronwarden"))
    theirs = sum(mb for name, (mb, _) in groups.items() if name in left_out)
    built = ready - bare - sum(mb for mb, _ in groups.values())
    print(f"  without {', '.join(sorted(left_out))}:")
    print(f"    their modules, in the replay   {theirs:7.2f} MB")
    print(f"    the rest of the stack replayed {rest:7.2f} MB  without them and cronwarden")
    print(f"    + cronwarden's own modules     {own:7.2f} MB")
    print(f"    + built by READY (restart)     {built:7.2f} MB")
    print(f"    = a daemon without them, est.  {bare + rest + own + built:7.2f} MB at READY")


def table(groups: dict[str, list[float]], on_restart: set[str], bare: float) -> None:
    print(f"\n  {'package (in import order of replay)':<36} {'modules':>7} {'MB':>6}  {'ratio':>6}")
    for name, (mb, count) in sorted(groups.items(), key=lambda item: -item[1][0]):
        if mb < 0.05:
            continue
        mark = "" if name in on_restart else "  (first start only)"
        print(f"  {name:<36} {count:>7.0f} {mb:>6.2f}  {mb / bare:>6.2f}{mark}")
    print("  (packages under 0.05 MB left out)")


if __name__ == "__main__":
    main()
