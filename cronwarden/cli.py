"""The ``cronwarden`` command: the daemon, config tools, and API client verbs."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from cronwarden import __version__
from cronwarden.errors import CgroupUnavailable, ConfigError, DataDirLocked
from cronwarden.run_sorts import SORT_FIELDS
from cronwarden.support import readable

if TYPE_CHECKING:
    from cronwarden.config import Config

EXIT_INVALID = 2


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The TOML config file.",
)


def load_or_exit(config_path: str) -> Config:
    """The config, or every error on stderr and exit 2."""
    from cronwarden.config import load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_INVALID)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cronwarden")
def main() -> None:
    """cronwarden: cron-style jobs with retries, timeouts, capped logs and durable history."""


@main.command()
@config_option
def serve(config_path: str) -> None:
    """Run the daemon (SIGTERM stops it gracefully, SIGHUP reloads the config)."""
    import signal

    # SIGHUP's default action ends the process: ignore it while the daemon loads; it
    # installs its own handler as soon as its loop runs.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from cronwarden.config import load_config

    try:
        # Read before the daemon's modules are imported: parsing a large file is the
        # start-up's largest passing use of memory, and what it frees then goes to the
        # imports instead of staying spare beside them (~2.5-4.5 MB less at READY with
        # 10,000 tasks).
        config = load_config(config_path)
        from cronwarden.daemon import serve as run_daemon

        run_daemon(config)
    except ConfigError as exc:
        click.echo(f"cronwarden: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    except (DataDirLocked, CgroupUnavailable) as exc:
        click.echo(f"cronwarden: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"cronwarden: cannot start: {exc}", err=True)
        sys.exit(1)


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
def validate(config_path: str, as_json: bool) -> None:
    """Check a config file; exit 2 listing every error."""
    from cronwarden.config import load_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        # The loader reports warnings only with a valid file; a ConfigError that
        # carries them shows them too.
        warnings = list(getattr(exc, "warnings", ()))
        if as_json:
            report = {"valid": False, "path": exc.path, "errors": exc.problems}
            click.echo(json.dumps({**report, "warnings": warnings}, indent=2))
        else:
            click.echo(str(exc), err=True)
            for warning in warnings:
                click.echo(f"warning: {warning}", err=True)
        sys.exit(EXIT_INVALID)
    warnings = list(config.warnings)  # may be fine later (a mount): said, exit 0
    if as_json:
        report = {
            "valid": True,
            "warnings": warnings,
            "path": str(config.path),
            "tasks": sorted(config.tasks),
        }
        click.echo(json.dumps(report, indent=2))
        return
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"{config.path}: OK ({len(config.tasks)} tasks"
        + (f", {len(warnings)} warning(s)" if warnings else "")
        + ")"
    )


@main.command("import-crontab")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--system",
    is_flag=True,
    help="System format (/etc/crontab, /etc/cron.d): a user column before the command.",
)
@click.option(
    "--user",
    "user",
    metavar="NAME",
    help="Whose crontab FILE is (a user crontab runs as its owner) [you].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="The config file the output will be appended to: names are made unique against it.",
)
def import_crontab(file: str, system: bool, user: str | None, config_path: str | None) -> None:
    """Print FILE's entries as cronwarden tasks (TOML) on stdout; what could not be
    converted goes to stderr, and the exit status is then 1.  FILE - reads stdin.

    \b
    crontab -l | cronwarden import-crontab --user deploy --config config.toml - >> config.toml
    cronwarden import-crontab --system /etc/cron.d/certbot --config config.toml >> config.toml
    """
    from cronwarden.crontab.convert import FormatMismatch, render

    run_as, user_note = _crontab_owner(system, user)
    existing = _existing_names(config_path)
    try:
        with click.open_file(file, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        click.echo(f"cronwarden: cannot read {file}: {exc.strerror}", err=True)
        sys.exit(EXIT_INVALID)
    try:
        toml_text, warnings, left_out = render(
            text, system=system, source=file, user=run_as, user_note=user_note, existing=existing
        )
    except FormatMismatch as exc:
        click.echo(f"cronwarden: {file}: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(toml_text, nl=False)
    for warning in warnings:
        click.echo(f"cronwarden: {file}: {warning}", err=True)
    if left_out:
        click.echo(f"cronwarden: {left_out} line(s) or setting(s) not converted", err=True)
        sys.exit(1)


def _crontab_owner(system: bool, user: str | None) -> tuple[str | None, str]:
    """Who a user crontab's tasks run as, and how the header says where that came from."""
    import pwd

    if system:
        if user is not None:
            _refuse_import(
                "--user is for a user crontab; a system crontab (--system) names the user "
                "of each entry in its 6th field"
            )
        return None, ""
    if user is None:
        try:
            name = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            _refuse_import("you have no user name on this host; give --user NAME")
        return name, "(the user who ran the import; give --user NAME for another user's crontab)"
    try:
        pwd.getpwnam(user)
    except KeyError:
        _refuse_import(
            f"--user {user!r}: no such user on this host; expected an existing user name "
            "(the owner of the crontab)"
        )
    return user, ""


def _existing_names(config_path: str | None) -> Any:
    """Names in --config (absent: none yet, as before the first >>)."""
    import tomllib

    from cronwarden.crontab.convert import Existing, read_existing

    if config_path is None:
        return Existing()
    try:
        text = Path(config_path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Existing()
    except (OSError, UnicodeDecodeError) as exc:
        _refuse_import(f"cannot read --config {config_path}: {getattr(exc, 'strerror', exc)}")
    try:
        return read_existing(text)
    except tomllib.TOMLDecodeError as exc:
        _refuse_import(f"--config {config_path} is not valid TOML: {exc}")


def _refuse_import(message: str) -> NoReturn:
    click.echo(f"cronwarden: import-crontab: {message}", err=True)
    sys.exit(EXIT_INVALID)


# -- explain ----------------------------------------------------------------------


@main.command()
@config_option
@click.argument("task")
@click.option(
    "-n",
    "count",
    default=10,
    show_default=True,
    type=click.IntRange(1, 10000),
    help="How many fire times.",
)
@click.option("--after", help="Start after this ISO 8601 instant (naive: the task's zone).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def explain(config_path: str, task: str, count: int, after: str | None, as_json: bool) -> None:
    """Show the next fire times of TASK in its zone and in UTC, marking DST shifts, the
    locks and pool its runs must hold to start, the tasks whose ends start it (after),
    the tasks its ends start, and the nodes that run it."""
    from cronwarden.scheduler.explain import upcoming
    from cronwarden.scheduler.triggers import CronTrigger, RebootTrigger, schedule_kind

    config = load_or_exit(config_path)
    definition = config.tasks.get(task)
    if definition is None:
        known = ", ".join(sorted(config.tasks)) or "none"
        click.echo(f"cronwarden: no task {task!r} in {config.path} (tasks: {known})", err=True)
        sys.exit(EXIT_INVALID)
    start = _parse_after(after, definition.zone)
    trigger = definition.trigger
    fires = [] if trigger is None else upcoming(trigger, definition.zone, start, count)
    if as_json:
        nodes = None if definition.nodes is None else list(definition.nodes)
        shown: dict[str, object] = {
            "task": task,
            "locks": list(definition.locks),
            "pool": definition.pool,
            "nodes": nodes,
            "on_every_node": definition.on_every_node,
        }
        shown |= _chain_keys(config, task)
        click.echo(json.dumps({**shown, "fires": [f.as_json() for f in fires]}, indent=2))
        return
    if trigger is None:
        click.echo(f"{task}: no schedule; it runs only on request")
        _echo_needs(config, task)
        return
    if isinstance(trigger, RebootTrigger):
        click.echo(
            f"{task}: @reboot; it runs once per machine boot on each node (not again when "
            "the daemon restarts within the same boot)"
        )
        _echo_needs(config, task)
        return
    click.echo(
        f"{task}: {definition.schedule!r} in {definition.zone} "
        f"({schedule_kind(trigger)}{_KIND_NOTES[schedule_kind(trigger)]})"
    )
    written = " ".join(str(definition.schedule).split())
    if isinstance(trigger, CronTrigger) and not written.startswith("@") and trigger.cron != written:
        click.echo(f"  H placed by the task name: {trigger.cron!r}")
    if definition.jitter:
        from cronwarden.scheduler.policies import jitter_offset

        delay = jitter_offset(task, definition.jitter).total_seconds()
        click.echo(f"  each start is delayed by its jitter offset of {delay:.3f}s")
    _echo_needs(config, task)
    for fire in fires:
        local = fire.at.strftime("%a %Y-%m-%d %H:%M:%S %Z (%z)")
        line = f"  {local:<40} {fire.utc_iso}"
        if fire.shifted is not None:
            hours = fire.shifted.total_seconds() / 3600
            direction = "forward" if hours > 0 else "back"
            line += f"   <- UTC offset changed: clocks went {direction} {abs(hours):g}h"
        click.echo(line)


def _echo_needs(config: Config, task: str) -> None:
    """What else than its schedule decides when the task's runs start, and what their
    ends start."""
    _echo_holds(config, task)
    _echo_chain(config, task)


def _chain_keys(config: Config, task: str) -> dict[str, Any]:
    """The task's chain as the task API shows it (GET /api/tasks/{name})."""
    definition = config.tasks[task]
    return {
        "after": list(definition.after),
        "after_on": list(definition.after_on),
        "after_mode": definition.after_mode,
        "after_params": definition.after_params,
        "starts": _starts(config, task),
    }


def _starts(config: Config, task: str) -> list[str]:
    """The tasks whose ``after`` names ``task``, read from the packed values (no task is
    built: a config may hold 10,000)."""
    return sorted(name for name, after in config.tasks.field("after") if task in after)


def _echo_chain(config: Config, task: str) -> None:
    """The chain around the task: a run that starts with no fire time (triggered_by
    chain) is explained by its ``after``; what the task's ends start, by ``starts``."""
    keys = _chain_keys(config, task)
    if keys["after"]:
        ends = " or ".join(keys["after_on"])
        if keys["after_mode"] == "all":
            when = f"one run once each has ended {ends} since its last chained run"
        else:
            when = f"each end {ends} of any of them starts a run"
        params = "; params inherited" if keys["after_params"] == "inherit" else ""
        click.echo(f"  after: {', '.join(keys['after'])} ({when}{params})")
    if keys["starts"]:
        click.echo(f"  starts: {', '.join(keys['starts'])} (its runs' ends start theirs)")


def _echo_holds(config: Config, task: str) -> None:
    """The task's locks and pool: a run starts only once it holds them all, so they
    explain a start later than its fire time."""
    definition = config.tasks[task]
    if definition.locks:
        names = ", ".join(definition.locks)
        click.echo(f"  locks: {names} (no other run naming one runs at the same time)")
    if definition.pool is not None:
        size = config.pools[definition.pool].size if definition.pool in config.pools else "?"
        click.echo(f"  pool: {definition.pool} (at most {size} runs of its tasks at once)")
    if definition.nodes is not None:
        patterns = ", ".join(definition.nodes)
        click.echo(f"  nodes: {patterns} (no other node fires it or accepts a trigger of it)")
    if definition.on_every_node:
        click.echo("  on_every_node: each fire runs once on every matching node")


_KIND_NOTES = {
    "fixed-time": ": a repeated wall time fires at its first occurrence; matching times "
    "in a skipped hour fire once, right after the jump",
    "periodic": ": follows elapsed time; fires in both occurrences of a repeated hour, "
    "not at all for wall times that do not exist",
    "absolute": ": counts absolute time from the Unix epoch, unaffected by DST",
    "at start": "",
}


def _parse_after(text: str | None, zone: Any) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not ISO 8601, e.g. 2026-03-29T00:00:00Z", param_hint="--after"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=zone)


# -- client verbs ----------------------------------------------------------------------


def _client_options(func: Any) -> Any:
    func = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)
    func = click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="Read the API address from this config's listen.",
    )(func)
    return click.option(
        "--url",
        help="API URL or unix:/path.sock "
        "[$CRONWARDEN_URL, else the config's listen, else 127.0.0.1:9477]",
    )(func)


def api_path(*parts: str) -> str:
    """``/api/PART/PART..``, each part percent-encoded whole: a task name or run id is
    always one path segment, never a way to reach another endpoint."""
    from urllib.parse import quote

    return "/api/" + "/".join(quote(part, safe="") for part in parts)


def _client(url: str | None, config_path: str | None) -> Any:
    from cronwarden.client import Client, resolve_url

    listen = load_or_exit(config_path).daemon.listen if config_path and not url else None
    return Client(resolve_url(url, listen))


def _call(
    client: Any, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
) -> Any:
    return _api(client.call, method, path, body, query)


def _api(function: Callable[..., Any], *args: Any) -> Any:
    """Call the API client; its errors end the command with their message and exit 1."""
    from cronwarden.client import ClientError

    try:
        return function(*args)
    except ClientError as exc:
        click.echo(f"cronwarden: {exc}", err=True)
        sys.exit(1)


def _table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@main.command()
@_client_options
def tasks(url: str | None, config_path: str | None, as_json: bool) -> None:
    """List tasks with their schedule, next fire and last run."""
    data = _call(_client(url, config_path), "GET", "/api/tasks")
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = []
    for t in data["tasks"]:
        last = t["last_run"]
        state = "paused" if t["paused"] else ("disabled" if not t["enabled"] else "")
        rows.append(
            [
                t["name"],
                t["schedule"] or "-",
                t["next_run_at"] or "-",
                f"{last['end_reason'] or last['status']} {last['created_at']}" if last else "-",
                state,
            ]
        )
    _table(rows, ["task", "schedule", "next run", "last run", "state"])


@main.command()
@_client_options
def nodes(url: str | None, config_path: str | None, as_json: bool) -> None:
    """List the daemons sharing the database: state, heartbeat, running runs, config."""
    data = _call(_client(url, config_path), "GET", "/api/nodes")
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = [
        [
            n["name"] + (" *" if n["this_node"] else ""),
            n["state"] + (f" (taken over by {n['taken_over_by']})" if n["taken_over_by"] else ""),
            n["started_at"],
            f"{n['heartbeat_at']} ({n['silent_s']:g}s ago)",
            str(n["running_runs"]),
            (n["config_hash"] or "-") + ("" if n["same_config"] else " (differs)"),
        ]
        for n in data["nodes"]
    ]
    _table(rows, ["node", "state", "started", "last heartbeat", "running", "config"])


@main.command()
@_client_options
def locks(url: str | None, config_path: str | None, as_json: bool) -> None:
    """List the named locks and pools: size, who holds each (on every node) and how many
    runs of the answering node wait for it."""
    data = _call(_client(url, config_path), "GET", "/api/locks")
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = [
        [
            lock["name"],
            lock["kind"],
            str(lock["size"]),
            ", ".join(f"{h['task_name']} {h['run_id']} on {h['node']}" for h in lock["holders"])
            or "-",
            str(len(lock["waiting"])),
        ]
        for lock in data["locks"]
    ]
    _table(rows, ["name", "kind", "size", "held-by", "waiting"])


@main.command()
@_client_options
@click.option("--task", help="Only this task.")
@click.option("--status", help="pending, running or ended (comma-separated).")
@click.option("--since", help='ISO 8601, a day, "24 hours ago", today or yesterday.')
@click.option("--search", help="Text in the task name, the error or the params.")
@click.option("--caused-by", metavar="RUN_ID", help="Only the runs this run's end started.")
@click.option(
    "--tag", "tags", multiple=True, help="Only runs carrying this tag (repeatable: all of them)."
)
@click.option(
    "--sort",
    type=click.Choice([f"{f}{d}" for f in SORT_FIELDS for d in ("", ":asc", ":desc")]),
    metavar="FIELD[:asc|:desc]",
    help=f"One of {', '.join(SORT_FIELDS)} [created_at:desc].",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--cursor",
    help="A page's next or previous cursor (printed under the table; next_cursor and "
    "prev_cursor with --json), with the same --sort.",
)
def runs(
    url: str | None,
    config_path: str | None,
    as_json: bool,
    task: str | None,
    status: str | None,
    since: str | None,
    search: str | None,
    caused_by: str | None,
    tags: tuple[str, ...],
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> None:
    """List runs, newest first (or as --sort says), a page at a time."""
    field, _, direction = (sort or "").partition(":")
    query = {
        "task_name": task,
        "status": status,
        "start_date": since,
        "search": search,
        "caused_by": caused_by,
        "tag": list(tags) or None,
        "sort_field": field or None,
        "sort_direction": direction or None,
        "limit": limit,
        "cursor": cursor,
    }
    data = _call(_client(url, config_path), "GET", "/api/runs", query=query)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = [
        [
            r["id"],
            r["task_name"],
            r["status"],
            r["end_reason"] or "-",
            "-" if r["exit_code"] is None else str(r["exit_code"]),
            "-" if r["signal"] is None else str(r["signal"]),
            r["triggered_by"],
            r["created_at"],
            "-" if r["duration_ms"] is None else f"{r['duration_ms']}ms",
            *_cost_cells(r),
            ",".join(r["tags"]) or "-",
        ]
        for r in data["runs"]
    ]
    headers = ["id", "task", "status", "end", "exit", "signal", "by", "created", "took"]
    _table(rows, [*headers, *COST_COLUMNS, "tags"])
    # On stderr: the table on stdout stays the runs alone.
    for word, key in (("previous", "prev_cursor"), ("next", "next_cursor")):
        if data.get(key):
            click.echo(f"{word} page: --cursor {data[key]}", err=True)


# What a run cost, in the runs table: CPU seconds (user + system) and peak memory.  Its
# output bytes are left to --json and the view of one run: the table is wide already.
COST_COLUMNS = ["cpu", "mem"]


def _cost_cells(run: dict[str, Any]) -> list[str]:
    peak = run.get("max_rss_bytes")
    return [_cpu_total(run) or "-", "-" if peak is None else readable.size(peak)]


def _cpu_total(run: dict[str, Any]) -> str | None:
    user, system = run.get("cpu_user_s"), run.get("cpu_system_s")
    return None if user is None or system is None else readable.cpu_seconds(user + system)


def _cost_line(run: dict[str, Any]) -> str:
    """A run's cost in words, for the view of one run (``run --wait``, ``rerun --wait``)."""
    parts = []
    total = _cpu_total(run)
    if total is not None:
        user, system = (readable.cpu_seconds(run[k]) for k in ("cpu_user_s", "cpu_system_s"))
        parts.append(f"cpu {total} ({user} user, {system} system)")
    if run.get("max_rss_bytes") is not None:
        parts.append(f"peak memory {readable.size(run['max_rss_bytes'])}")
    if run.get("output_bytes") is not None:
        parts.append(f"output {readable.size(run['output_bytes'])}")
    return ", ".join(parts) or "cost not known"


@main.command()
@_client_options
@click.argument("run_id")
def show(url: str | None, config_path: str | None, as_json: bool, run_id: str) -> None:
    """Show one run: its fields, every attempt of its fire, and the runs it repeats,
    was repeated by, was started by and started (one request:
    GET /api/runs/RUN_ID?expand=attempts,related)."""
    data = _call(
        _client(url, config_path),
        "GET",
        api_path("runs", run_id),
        query={"expand": "attempts,related"},
    )
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for name in ("id", "task_name", "status", "end_reason", "exit_code", "signal"):
        click.echo(f"{name + ':':<14}{'-' if data[name] is None else data[name]}")
    for name in ("triggered_by", "created_at", "start_at", "end_at", "error"):
        click.echo(f"{name + ':':<14}{'-' if data[name] is None else data[name]}")
    click.echo(f"{'tags:':<14}{', '.join(data['tags']) or '-'}")
    click.echo(f"{'metadata:':<14}{json.dumps(data['metadata']) if data['metadata'] else '-'}")
    related = data["related"]
    rows = [_linked("attempt " + str(a["attempt"]), a, data["id"]) for a in data["attempts"]]
    rows += [_linked("rerun of", related["rerun_of"], "")] if related["rerun_of"] else []
    for relation, key in (("rerun", "reruns"), ("caused by", "caused_by"), ("chained", "chained")):
        rows += [_linked(relation, r, "") for r in related[key]]
    click.echo()
    _table(rows, ["relation", "id", "task", "status", "end", "created"])


def _linked(relation: str, run: dict[str, Any], this: str) -> list[str]:
    """A row of `show`'s table of linked runs (``this``: the id shown, marked)."""
    return [
        relation + (" (this run)" if run["id"] == this else ""),
        run["id"],
        run["task_name"],
        run["status"],
        run["end_reason"] or "-",
        run["created_at"],
    ]


@main.command()
@_client_options
@click.argument("task")
@click.option("--since", help='ISO 8601, a day, "7 days ago", today or yesterday.')
def stats(
    url: str | None, config_path: str | None, as_json: bool, task: str, since: str | None
) -> None:
    """What TASK's runs came to: outcomes, success rate, durations."""
    data = _call(
        _client(url, config_path), "GET", api_path("tasks", task, "stats"), query={"since": since}
    )
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rate = "-" if data["success_rate"] is None else f"{data['success_rate']:.1%}"
    durations = data["duration_ms"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(data["by_end_reason"].items())) or "-"
    click.echo(
        f"{task}: {data['runs']} runs ({data['active']} active) since {data['since'] or 'ever'}"
    )
    click.echo(f"  outcomes:     {outcomes}")
    click.echo(f"  success rate: {rate}")
    click.echo(
        f"  duration:     p50 {durations['p50']} ms, p95 {durations['p95']} ms, "
        f"max {durations['max']} ms (of the newest {durations['sample']})"
    )
    click.echo(f"  last success: {data['last_success_at'] or '-'}")
    click.echo(f"  last failure: {data['last_failure_at'] or '-'}")
    _echo_stats_cost(data)


def _echo_stats_cost(data: dict[str, Any]) -> None:
    cpu, memory = data["cpu_s"], data["max_rss_bytes"]
    if cpu["runs"]:
        click.echo(
            f"  cpu:          {readable.cpu_seconds(cpu['total'])} in all "
            f"({readable.cpu_seconds(cpu['user'])} user, "
            f"{readable.cpu_seconds(cpu['system'])} system), "
            f"{readable.cpu_seconds(cpu['avg'])} a run (of {cpu['runs']})"
        )
    else:
        click.echo("  cpu:          - (no run's cost is known)")
    peak = {k: "-" if memory[k] is None else readable.size(memory[k]) for k in ("p95", "max")}
    click.echo(
        f"  peak memory:  p95 {peak['p95']} (of the newest {memory['sample']}), max {peak['max']}"
    )
    click.echo(f"  output:       {readable.size(data['output_bytes'])} written")


@main.command("run")
@_client_options
@click.argument("task")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A parameter the task declares (repeatable).",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    help="A tag for this run, besides its task's (repeatable, at most 10).",
)
@click.option(
    "--metadata", metavar="JSON", help="A JSON object kept with the run, e.g. '{\"ticket\": 42}'."
)
@click.option("--wait", is_flag=True, help="Wait for the end; exit with the run's exit code.")
@click.option("--delay", metavar="DURATION", help='Start no earlier than this from now ("90s").')
@click.option(
    "--run-at",
    "run_at",
    metavar="INSTANT",
    help='Start no earlier than this ("2026-12-24T18:00Z").',
)
@click.option("--ttl", metavar="DURATION", help='End it as expired if not started by then ("10m").')
def run_task(
    url: str | None,
    config_path: str | None,
    as_json: bool,
    task: str,
    params: tuple[str, ...],
    tags: tuple[str, ...],
    metadata: str | None,
    wait: bool,
    delay: str | None,
    run_at: str | None,
    ttl: str | None,
) -> None:
    """Trigger TASK now, or later with --delay or --run-at."""
    values = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--param")
        values[name] = value
    body: dict[str, Any] = {"params": values}
    timing = {"delay": delay, "run_at": run_at, "ttl": ttl}
    body.update({key: value for key, value in timing.items() if value is not None})
    if tags:
        body["tags"] = list(tags)
    if metadata is not None:
        try:
            body["metadata"] = json.loads(metadata)
        except ValueError as exc:  # the daemon says what metadata may be
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--metadata") from None
    client = _client(url, config_path)
    run = _call(client, "POST", api_path("tasks", task, "runs"), body)
    _report_new_run(client, run, wait, as_json)


@main.command()
@_client_options
@click.argument("run_id")
@click.option("--wait", is_flag=True, help="Wait for the end; exit with the run's exit code.")
def rerun(url: str | None, config_path: str | None, as_json: bool, run_id: str, wait: bool) -> None:
    """Start RUN_ID's task again with the same params (a new run that records which
    run it repeats)."""
    client = _client(url, config_path)
    _report_new_run(client, _call(client, "POST", api_path("runs", run_id, "rerun")), wait, as_json)


def _report_new_run(client: Any, run: dict[str, Any], wait: bool, as_json: bool) -> None:
    """Print a run just started; with ``wait``, at its end, exiting with its status."""
    while wait and run["status"] != "ended":
        time.sleep(0.2)
        run = _call(client, "GET", api_path("runs", run["id"]))
    if as_json:
        click.echo(json.dumps(run, indent=2))
    elif wait:
        took = "" if run["duration_ms"] is None else f" in {run['duration_ms']}ms"
        click.echo(f"{run['id']} {run['status']} {run['end_reason']}{took}; {_cost_line(run)}")
    else:
        later = f" (delayed until {run['delayed_until']})" if run.get("delayed_until") else ""
        click.echo(f"{run['id']} {run['status']}{later}")
    if wait:
        sys.exit(run_exit_status(run))


def run_exit_status(run: dict[str, Any]) -> int:
    """The run's exit code; 128+N for signal N (as shells report); 1 if it never exited."""
    if run["exit_code"] is not None:
        return int(run["exit_code"])
    if run["signal"] is not None:
        return 128 + int(run["signal"])
    return 1


@main.command()
@_client_options
@click.argument("run_id")
@click.option("--follow", is_flag=True, help="Print new lines as they come until the run ends.")
@click.option("--stream", type=click.Choice(["stdout", "stderr"]), help="Only one stream.")
@click.option("--raw", is_flag=True, help="The output bytes as they came, streams interleaved.")
def logs(
    url: str | None,
    config_path: str | None,
    as_json: bool,
    run_id: str,
    follow: bool,
    stream: str | None,
    raw: bool,
) -> None:
    """Print a run's output (stderr lines go to stderr, unless --raw)."""
    client = _client(url, config_path)
    if raw:
        if follow or stream or as_json:
            raise click.UsageError("--raw prints the output as is: no --follow, --stream, --json")
        _api(client.download, api_path("runs", run_id, "log", "raw"), _write_stdout)
        return
    if follow:
        _api(
            client.follow,
            api_path("runs", run_id, "log"),
            {"follow": "true", "stream": stream},
            lambda event: _show_event(event, as_json),
        )
        return
    after = 0
    while True:
        page = _call(
            client,
            "GET",
            api_path("runs", run_id, "log"),
            query={"after": after, "limit": 10000, "stream": stream},
        )
        for line in page["lines"]:
            _show_line(line, as_json)
        after = page["next_after"]
        if not page["has_more"]:
            return


def _show_line(line: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(line))
    else:
        click.echo(line["text"], err=line["stream"] == "stderr")


def _show_event(event: Any, as_json: bool) -> bool:
    """One event of a followed log; False at the run's end."""
    if event.kind == "end":
        if as_json:
            click.echo(json.dumps({"end": json.loads(event.data)}))
        return False
    _show_line(json.loads(event.data), as_json)
    return True


def _write_stdout(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Take example task names from this config.",
)
def openapi(config_path: str | None) -> None:
    """Print the API's OpenAPI 3.1 document (what a daemon serves at /openapi.json)."""
    from cronwarden.api.openapi import build_spec
    from cronwarden.api.routes import EXAMPLE_TASKS, OPERATIONS

    tasks = list(load_or_exit(config_path).tasks)[:EXAMPLE_TASKS] if config_path else []
    click.echo(json.dumps(build_spec(OPERATIONS, tasks), indent=2))


@main.command()
@_client_options
@click.option("--task", "tasks", multiple=True, help="Only this task's events (repeatable).")
def events(url: str | None, config_path: str | None, as_json: bool, tasks: tuple[str, ...]) -> None:
    """Print runs created, started and ended, tasks paused and resumed, reloads, as
    they happen (until interrupted; a daemon restart is followed across)."""
    client = _client(url, config_path)
    query = {"task": ",".join(tasks) or None}
    with contextlib.suppress(KeyboardInterrupt):  # the way to stop following
        _api(client.follow, "/api/events", query, lambda event: _show_change(event, as_json))


def _show_change(event: Any, as_json: bool) -> bool:
    data = json.loads(event.data)
    if as_json:
        click.echo(json.dumps({"id": event.id, "event": event.kind, "data": data}))
    elif event.kind == "gap":
        click.echo(f"-- {data['detail']}", err=True)
    elif event.kind.startswith("run."):
        what = data["status"] if event.kind != "run.ended" else data["end_reason"]
        if event.kind == "run.reported" and data["progress"] is not None:
            what = f"{data['progress']:.0%} {data['stage'] or ''}".rstrip()
        elif event.kind == "run.reported":
            what = data["stage"] or what
        code = "" if data["exit_code"] is None else f" exit {data['exit_code']}"
        click.echo(f"{event.kind:<12} {data['task_name']:<20} {data['id']}  {what}{code}")
    else:
        click.echo(f"{event.kind:<12} {json.dumps(data)}")
    return True


@main.command()
@click.option("--stage", metavar="TEXT", help="What the job is doing now (one line).")
@click.option("--progress", metavar="0..1", help="How far along it is, from 0 to 1.")
@click.option("--output", metavar="JSON", help="A result: any JSON value (up to 64 KiB).")
@click.option("--output-file", metavar="FILE", help="The result from a JSON file (- for stdin).")
def report(
    stage: str | None, progress: str | None, output: str | None, output_file: str | None
) -> None:
    """From inside a run: report its stage, progress and output (the run's environment
    says which run, with which token, to which daemon).  Silent when it lands."""
    from cronwarden.job_report import ReportError, report_body, send_report

    try:
        send_report(os.environ, report_body(stage, progress, output, output_file))
    except ReportError as exc:
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)


@main.command()
@_client_options
@click.argument("run_id")
def stop(url: str | None, config_path: str | None, as_json: bool, run_id: str) -> None:
    """Stop a run (a waiting one ends at once)."""
    run = _call(_client(url, config_path), "POST", api_path("runs", run_id, "stop"))
    click.echo(json.dumps(run, indent=2) if as_json else f"stopping {run['id']}")


@main.command()
@_client_options
@click.argument("run_id")
@click.argument("name", required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="With NAME: write the file here instead of to stdout.",
)
def artifacts(
    url: str | None,
    config_path: str | None,
    as_json: bool,
    run_id: str,
    name: str | None,
    output: str | None,
) -> None:
    """List the files a run kept ($CRONWARDEN_ARTIFACTS_DIR), or with NAME print one."""
    client = _client(url, config_path)
    if name is None:
        if output is not None:
            raise click.UsageError("-o/--output saves one artifact: give its NAME too")
        _list_artifacts(_call(client, "GET", api_path("runs", run_id, "artifacts")), as_json)
        return
    if as_json:
        raise click.UsageError("--json is for the listing; an artifact is printed as it is")
    from urllib.parse import quote

    from cronwarden.artifacts.names import NAMES, name_problem

    problem = name_problem(name)
    if problem is not None:  # said here: a URL would lose its '..' before the daemon saw it
        raise click.UsageError(f"{name!r} cannot name an artifact: {problem}; names are {NAMES}")

    # Its name's own '/' stay separators: the API takes the name as a path.
    path = api_path("runs", run_id, "artifacts") + "/" + quote(name, safe="/")
    if output is None:
        _api(client.download, path, _write_stdout)
        return
    target = Path(output)
    partial = target.with_name(f".{target.name}.part")  # a broken download replaces nothing
    try:
        with open(partial, "wb") as file:
            _api(client.download, path, file.write)
        partial.replace(target)
    except OSError as exc:
        click.echo(f"cronwarden: cannot write {output}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    finally:
        partial.unlink(missing_ok=True)


def _list_artifacts(listing: dict[str, Any], as_json: bool) -> None:

    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    kept, dropped = listing["artifacts"], listing["dropped"]
    if not kept and not dropped:
        click.echo("no artifacts")
        return
    rows = [[a["name"], readable.size(a["size"]), a["sha256"]] for a in kept]
    _table(rows, ["name", "size", "sha256"])
    if dropped:
        click.echo()
        sizes = ["-" if d["size"] is None else readable.size(d["size"]) for d in dropped]
        rows = [[d["name"], size, d["why"]] for d, size in zip(dropped, sizes, strict=True)]
        _table(rows, ["dropped", "size", "why"])


@main.command()
@_client_options
def reload(url: str | None, config_path: str | None, as_json: bool) -> None:
    """Re-read the daemon's config file; a bad file keeps the running config."""
    data = _call(_client(url, config_path), "POST", "/api/reload")
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    summary = (
        ", ".join(f"{k}: {', '.join(v)}" for k, v in data.items() if isinstance(v, list) and v)
        or "no schedule changes"
    )
    click.echo(f"reloaded ({summary})")


def _pause_or_resume(verb: str) -> Any:
    @_client_options
    @click.argument("task")
    def command(url: str | None, config_path: str | None, as_json: bool, task: str) -> None:
        data = _call(_client(url, config_path), "POST", api_path("tasks", task, verb))
        click.echo(json.dumps(data, indent=2) if as_json else f"{task}: {verb}d")

    command.__doc__ = f"{verb.capitalize()} TASK's schedule (persists across restarts)."
    return command


main.command("pause")(_pause_or_resume("pause"))
main.command("resume")(_pause_or_resume("resume"))
