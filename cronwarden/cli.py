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
    """The config, or every error on stderr (in JSON with --json) and exit 2."""
    from cronwarden.config import load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        if _json_wanted():
            fail(str(exc), code=EXIT_INVALID)
        click.echo(str(exc), err=True)
        sys.exit(EXIT_INVALID)


_JSON_ASKED = "cronwarden.json"  # ctx.meta: --json was given to the verb


def _json_wanted() -> bool:
    ctx = click.get_current_context(silent=True)
    return ctx is not None and bool(ctx.params.get("as_json") or ctx.meta.get(_JSON_ASKED))


def fail(message: str, *, status: int | None = None, code: int = 1) -> NoReturn:
    """End a command on an error: ``cronwarden: MESSAGE`` on stderr; with --json,
    ``{"error": MESSAGE, "status": S}`` on stdout instead, S the HTTP status the API
    answered with (null: no answer, or an error before any request).  The exit code is
    the same either way: 1 for a refused or failed request, 2 for a bad invocation."""
    if _json_wanted():
        click.echo(json.dumps({"error": message, "status": status}))
    else:
        click.echo(f"cronwarden: {message}", err=True)
    sys.exit(code)


class _Verbs(click.Group):
    """cronwarden's verbs.  One given --json answers even a usage error (an unknown
    option, a bad value) in JSON on stdout, with click's exit code (2)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = args[: args.index("--")] if "--" in args else args
        ctx.meta[_JSON_ASKED] = "--json" in given
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if not ctx.meta.get(_JSON_ASKED):
                raise
            fail(exc.format_message(), code=exc.exit_code)


@click.group(cls=_Verbs, context_settings={"help_option_names": ["-h", "--help"]})
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
        fail(f"no task {task!r} in {config.path} (tasks: {known})", code=EXIT_INVALID)
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
    """The options every client verb takes.  The token's are not passed to the verb:
    ``_client`` reads what they gave (kept in the context)."""
    func = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help='Print JSON for scripts; an error too: {"error": ..., "status": HTTP status '
        "or null} on stdout, with the same exit code.",
    )(func)
    func = click.option(
        "--token-file",
        metavar="FILE",
        expose_value=False,
        callback=_token_from_file,
        help="Read the API token from FILE (safer than --token: no other user sees it).",
    )(func)
    func = click.option(
        "--token",
        metavar="TOKEN",
        expose_value=False,
        callback=_token_given,
        help="The API token, for a daemon with [[daemon.tokens]]: each verb needs a "
        "token with its scope (read; trigger for run, rerun, stop; admin for reload, "
        "pause, resume) [$CRONWARDEN_TOKEN].",
    )(func)
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


_TOKEN = "cronwarden.token"  # ctx.meta: (the token, where it came from)


def _token_given(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        _keep_token(ctx, value.strip(), "--token")


def _token_from_file(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    try:
        token = Path(value).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise click.BadParameter(f"cannot read {value}: {why}", param=param) from None
    if not token or "\n" in token:
        raise click.BadParameter(
            f"{value} must hold the token alone, on one line", param=param
        ) from None
    _keep_token(ctx, token, f"--token-file {value}")


def _keep_token(ctx: click.Context, token: str, source: str) -> None:
    if _TOKEN in ctx.meta:
        raise click.UsageError("give --token or --token-file, not both", ctx=ctx)
    if not token:
        raise click.BadParameter("is empty; expected the token", param_hint=source)
    ctx.meta[_TOKEN] = (token, source)


def _token() -> tuple[str | None, str | None]:
    """The token for the API and where it came from: --token, --token-file, else
    $CRONWARDEN_TOKEN, else none."""
    ctx = click.get_current_context()
    if _TOKEN in ctx.meta:
        return ctx.meta[_TOKEN]  # type: ignore[no-any-return]
    from_env = os.environ.get("CRONWARDEN_TOKEN", "").strip()
    return (from_env, "$CRONWARDEN_TOKEN") if from_env else (None, None)


def api_path(*parts: str) -> str:
    """``/api/PART/PART..``, each part percent-encoded whole: a task name or run id is
    always one path segment, never a way to reach another endpoint."""
    from urllib.parse import quote

    return "/api/" + "/".join(quote(part, safe="") for part in parts)


def _client(url: str | None, config_path: str | None) -> Any:
    from cronwarden.client import Client, resolve_url

    listen = load_or_exit(config_path).daemon.listen if config_path and not url else None
    return Client(resolve_url(url, listen), _token()[0])


def _call(
    client: Any,
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, Any] | None = None,
    names: dict[str, str] | None = None,
) -> Any:
    """The API's answer; ``names``: the option that set each query parameter, for
    errors to name (``--since`` where the API says start_date)."""
    return _api(client.call, method, path, body, query, names=names)


def _api(function: Callable[..., Any], *args: Any, names: dict[str, str] | None = None) -> Any:
    """Call the API client; its errors end the command with their message and exit 1."""
    from cronwarden.client import ClientError

    try:
        return function(*args)
    except ClientError as exc:
        _failed(exc, names)


def _failed(exc: Any, names: dict[str, str] | None = None) -> NoReturn:
    """End the command on the API client's error, in the CLI's terms."""
    from cronwarden.client import problem_text

    if exc.problem is not None and exc.status in (401, 403):
        fail(_refusal(exc), status=exc.status)
    if exc.problem is not None and exc.status is not None and names:
        fail(problem_text(exc.status, exc.problem, names), status=exc.status)
    fail(str(exc), status=exc.status)


def _refusal(exc: Any) -> str:
    """A 401 or 403 in the CLI's terms: which option or variable gives a token, and the
    scope the request needs (the daemon's own rule, api/auth.py)."""
    from cronwarden.api.auth import scope_for

    method, path = exc.request
    scope = scope_for(method, path) or "read"
    source = _token()[1]
    fix = "give --token (or --token-file) or set CRONWARDEN_TOKEN"
    if exc.status == 403:
        return f"403 {exc.problem['detail']}: {fix} to a token with the {scope!r} scope"
    if source is None:
        return f"401 this daemon needs a token: {fix}; the token needs the {scope!r} scope"
    return (
        f"401 the daemon does not know the token from {source}: {fix} to one of its "
        f"tokens; the token needs the {scope!r} scope"
    )


def _table(
    rows: list[list[str]], headers: list[str], width: int | None = None, gives_way: int = 0
) -> None:
    from cronwarden.support.table import table_lines

    for line in table_lines(rows, headers, width=width, gives_way=gives_way):
        click.echo(line)


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


# The option that sets each query parameter of GET /api/runs, for errors to name.
_RUN_FILTERS = {
    "task_name": "--task",
    "status": "--status",
    "end_reason": "--end-reason",
    "triggered_by": "--triggered-by",
    "start_date": "--since",
    "end_date": "--until",
    "search": "--search",
    "caused_by": "--caused-by",
    "tag": "--tag",
    "sort_field": "--sort",
    "sort_direction": "--sort",
    "limit": "--limit",
    "cursor": "--cursor",
}
_WHEN = '(ISO 8601 "2026-01-31T12:00:00Z", a day "2026-01-31", "24 hours ago", today, ...)'


def _run_filters(func: Any) -> Any:
    """The runs verb's filters: every one the API's run list has."""
    options = [
        click.option("--task", help="Only this task's runs."),
        click.option(
            "--status",
            multiple=True,
            help="pending, running or ended (comma-separated or repeated: any of them).",
        ),
        click.option(
            "--end-reason",
            "end_reasons",
            multiple=True,
            metavar="REASON",
            help="success, failed, timeout, stopped, crashed, skipped, log_overflow, missed "
            "or expired (comma-separated or repeated: any of them).",
        ),
        click.option(
            "--triggered-by",
            "triggered_by",
            multiple=True,
            metavar="TRIGGER",
            help="schedule, catch_up, api, retry or chain (comma-separated or repeated).",
        ),
        click.option("--since", metavar="WHEN", help=f"Created at or after WHEN {_WHEN}."),
        click.option(
            "--until",
            metavar="WHEN",
            help="Created at or before WHEN (a day or today: until its end).",
        ),
        click.option("--search", help="Text in the task name, the error, the params or tags."),
        click.option("--caused-by", metavar="RUN_ID", help="Only the runs this run's end started."),
        click.option(
            "--tag",
            "tags",
            multiple=True,
            help="Only runs carrying this tag (repeatable: all of them).",
        ),
        click.option(
            "--sort",
            type=click.Choice([f"{f}{d}" for f in SORT_FIELDS for d in ("", ":asc", ":desc")]),
            metavar="FIELD[:asc|:desc]",
            help=f"One of {', '.join(SORT_FIELDS)} [created_at:desc].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@_client_options
@_run_filters
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    help="Runs a page [50; with --all, pages of 1000].",
)
@click.option(
    "--cursor",
    help="A page's next or previous cursor (printed under the table; next_cursor and "
    "prev_cursor with --json), with the same --sort.",
)
@click.option(
    "--all", "every_page", is_flag=True, help="Every page, following next_cursor to the end."
)
@click.option("--wide", is_flag=True, help="Every column (trigger, signal, instant, cost, tags).")
def runs(
    url: str | None,
    config_path: str | None,
    as_json: bool,
    limit: int | None,
    cursor: str | None,
    every_page: bool,
    wide: bool,
    **filters: Any,
) -> None:
    """List runs, newest first (or as --sort says), a page at a time (every page with
    --all).  For example, last night's failures:

    \b
    cronwarden runs --end-reason failed,timeout,crashed --since yesterday --all
    """
    client = _client(url, config_path)
    query = _runs_query(filters) | {"limit": limit or (1000 if every_page else 50)}
    page = _call(client, "GET", "/api/runs", query={**query, "cursor": cursor}, names=_RUN_FILTERS)
    found = page["runs"]
    while every_page and page["has_next"]:
        page = _call(
            client,
            "GET",
            "/api/runs",
            query={**query, "cursor": page["next_cursor"]},
            names=_RUN_FILTERS,
        )
        found += page["runs"]
    if every_page:
        page = {"runs": found, "next_cursor": None, "has_next": False}
    if as_json:
        click.echo(json.dumps(page, indent=2))
        return
    _runs_table(found, wide)
    # On stderr: the table on stdout stays the runs alone.
    for word, key in (("previous", "prev_cursor"), ("next", "next_cursor")):
        if page.get(key):
            click.echo(f"{word} page: --cursor {page[key]}", err=True)


def _runs_query(filters: dict[str, Any]) -> dict[str, Any]:
    """GET /api/runs's query from the runs verb's filters."""
    field, _, direction = (filters["sort"] or "").partition(":")
    return {
        "task_name": filters["task"],
        "status": ",".join(filters["status"]) or None,
        "end_reason": ",".join(filters["end_reasons"]) or None,
        "triggered_by": ",".join(filters["triggered_by"]) or None,
        "start_date": filters["since"],
        "end_date": filters["until"],
        "search": filters["search"],
        "caused_by": filters["caused_by"],
        "tag": list(filters["tags"]) or None,
        "sort_field": field or None,
        "sort_direction": direction or None,
    }


def _runs_table(found: list[dict[str, Any]], wide: bool) -> None:
    from cronwarden import run_text

    if wide:
        _table([run_text.wide_cells(r) for r in found], run_text.WIDE_HEADERS)
        return
    rows = [run_text.cells(r) for r in found]
    _table(rows, run_text.HEADERS, run_text.TABLE_WIDTH, run_text.TASK_COLUMN)


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
    took = {
        k: "-" if durations[k] is None else readable.duration_ms(durations[k]) for k in durations
    }
    click.echo(
        f"  duration:     p50 {took['p50']}, p95 {took['p95']}, "
        f"max {took['max']} (of the newest {durations['sample']})"
    )
    click.echo(f"  last success: {data['last_success_at'] or '-'}")
    click.echo(f"  last failure: {data['last_failure_at'] or '-'}")
    _echo_stats_cost(data)


def _echo_stats_cost(data: dict[str, Any]) -> None:
    cpu, memory = data["cpu_s"], data["max_rss_bytes"]
    if cpu["runs"]:
        click.echo(
            f"  cpu:          {readable.seconds(cpu['total'])} in all "
            f"({readable.seconds(cpu['user'])} user, "
            f"{readable.seconds(cpu['system'])} system), "
            f"{readable.seconds(cpu['avg'])} a run (of {cpu['runs']})"
        )
    else:
        click.echo("  cpu:          - (no run's cost is known)")
    peak = {k: "-" if memory[k] is None else readable.size(memory[k]) for k in ("p95", "max")}
    click.echo(
        f"  peak memory:  p95 {peak['p95']} (of the newest {memory['sample']}), max {peak['max']}"
    )
    click.echo(f"  output:       {readable.size(data['output_bytes'])} written")


def _wait_options(verb: Any) -> Any:
    """--wait and --wait-retries, as run and rerun both take them."""
    verb = click.option(
        "--wait-retries/--no-wait-retries",
        default=True,
        help="With --wait: follow a failed attempt's retries to the last attempt (each "
        'failed attempt says "retry N scheduled at ...", on stderr) [on]; '
        "--no-wait-retries ends with the first attempt.",
    )(verb)
    return click.option(
        "--wait",
        is_flag=True,
        help="Wait for the end, through the retries of a failed attempt; exit with the final "
        "outcome's exit code (128+N for signal N).",
    )(verb)


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
@_wait_options
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
    wait_retries: bool,
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
    _report_new_run(client, run, as_json, wait=wait, retries=wait_retries)


@main.command()
@_client_options
@click.argument("run_id")
@_wait_options
def rerun(
    url: str | None,
    config_path: str | None,
    as_json: bool,
    run_id: str,
    wait: bool,
    wait_retries: bool,
) -> None:
    """Start RUN_ID's task again with the same params (a new run that records which
    run it repeats)."""
    client = _client(url, config_path)
    run = _call(client, "POST", api_path("runs", run_id, "rerun"))
    _report_new_run(client, run, as_json, wait=wait, retries=wait_retries)


def _report_new_run(
    client: Any, run: dict[str, Any], as_json: bool, *, wait: bool, retries: bool
) -> None:
    """Print a run just started; with ``wait``, its end (the end of its last retry, with
    ``retries``), exiting with that attempt's status."""
    if not wait:
        later = f" (delayed until {run['delayed_until']})" if run.get("delayed_until") else ""
        click.echo(json.dumps(run, indent=2) if as_json else f"{run['id']} {run['status']}{later}")
        return
    from cronwarden.run_text import ended_line

    try:
        last = _last_attempt(client, run, follow=retries, quiet=as_json)
    except KeyboardInterrupt:
        fail(f"stopped waiting; the run goes on (cronwarden show {run['id']})", code=130)
    if as_json:
        shown = _call(client, "GET", api_path("runs", last["id"]), query={"expand": "attempts"})
        click.echo(json.dumps(shown, indent=2))
    else:
        click.echo(ended_line(last))
    sys.exit(run_exit_status(last))


def _last_attempt(client: Any, run: dict[str, Any], *, follow: bool, quiet: bool) -> dict[str, Any]:
    """Wait for ``run``'s end, then (``follow``) for each retry's, saying on stderr
    (unless ``quiet``) when each retry is due; the last attempt waited for, ended."""
    from cronwarden.retry_chain import attempt_line

    policy = None
    while True:
        run = _ended(client, run)
        if run["end_reason"] == "success":
            return run
        policy = policy or _retry_policy(client, run["task_name"])
        retry = _retry_of(client, run, policy)
        if retry is None or policy is None:
            return run
        if not quiet:
            due = policy.due(run, retry)
            click.echo(attempt_line(run, retry, due, datetime.now(UTC)), err=True)
        if not follow:
            return run
        run = retry


def _ended(client: Any, run: dict[str, Any]) -> dict[str, Any]:
    """The run once it has ended (polled: a tenth of a second at first, then up to a
    second apart for a long run or a retry's delay)."""
    pause = 0.1
    while run["status"] != "ended":
        time.sleep(pause)
        pause = min(pause * 1.5, 1.0)
        run = _call(client, "GET", api_path("runs", run["id"]))
    return run


def _retry_policy(client: Any, task: str) -> Any:
    """The task's retry policy, as the daemon runs it now; None if it has no such task
    any more (its runs are not retried)."""
    from cronwarden.client import ClientError
    from cronwarden.retry_chain import RetryPolicy

    path = api_path("tasks", task)
    try:
        return RetryPolicy.of(client.call("GET", path, None, {"definition": "true"})["definition"])
    except ClientError as exc:
        if exc.status == 404:
            return None
        _failed(exc)


# A retry is committed a moment after its attempt's end is recorded.
RETRY_APPEARS_WITHIN = 30.0


def _retry_of(client: Any, run: dict[str, Any], policy: Any) -> dict[str, Any] | None:
    """The retry of an ended attempt, once the daemon has committed it; None when its
    task's policy asks for none."""
    if policy is None or not policy.retries_after(run):
        return None
    deadline = time.monotonic() + RETRY_APPEARS_WITHIN
    while True:
        shown = _call(client, "GET", api_path("runs", run["id"]), query={"expand": "attempts"})
        retry = next((a for a in shown["attempts"] if a["retry_of"] == run["id"]), None)
        if retry is not None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if retry is None:
        click.echo(
            f"cronwarden: attempt {run['attempt']} ended {run['end_reason']} and its task "
            f"retries it, but no retry appeared within {RETRY_APPEARS_WITHIN:g}s (the "
            "daemon stopping, or the task changed?)",
            err=True,
        )
    return retry


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
