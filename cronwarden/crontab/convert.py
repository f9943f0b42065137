"""crontab(5) -> cronwarden tasks: text in, tasks, mail targets and warnings out.

What cron does and how each part is carried over:

* The two formats: a user's crontab (``crontab -l``) runs as its owner, so every task
  gets ``user`` (``--user NAME``, else the user who runs the import); the system format
  (``--system``: /etc/crontab, /etc/cron.d) has a user column, which becomes ``user``.
  A file read in the wrong format converts into nonsense that still loads (a task
  running ``root command -v ...``, or ``user = "/home/deploy/bin/backup.sh"``), so the
  field after the schedule is checked against this host's users and programs, and a
  file that is plainly the other format is refused (FormatMismatch).
* Cron starts a command in its HOME: a crontab's ``HOME=`` becomes ``working_dir``;
  without it a run starts in its user's home, as under cron.
* ``NAME=value`` lines set variables for the entries after them (quotes stripped, as
  cronie does): they become each later task's ``env``.  ``SHELL`` runs the command
  with that shell instead of /bin/sh; ``CRON_TZ`` is the zone of the schedules after
  it; ``TZ`` is passed to the commands, as cron does; ``RANDOM_DELAY`` (cronie,
  minutes) becomes ``jitter``.
* ``MAILTO`` (cron mails what a job prints) becomes an Apprise mail target sending
  ``run.output`` and ``run.failed`` for the entries after it, through the SMTP server
  on this host; ``MAILFROM`` (cronie) is its sender; ``MAILTO=""`` turns mail off.
* ``@reboot`` and the other macros keep their names; 5 fields are read as written.
* A ``%`` in a command ends the command; what follows is its standard input, each
  further ``%`` a newline; ``\\%`` is a literal ``%``.  The input becomes a here-document.
* Cron never runs what it missed while down: every task gets ``catch_up = "skip"``.
* Names come from the program an entry runs (crontab/names.py), unique in
  the output and against the file it will be appended to (``Existing``).

Anything that cannot be converted is a warning naming its line; nothing is dropped
silently.  Host facts (users, programs, homes, the host name) come in through ``Host``
so the conversion itself is pure.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronwarden.crontab.names import name_for, unique_name
from cronwarden.errors import ScheduleError
from cronwarden.scheduler.triggers import parse_schedule

_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_MACROS = {
    "@reboot",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
}
# What the word after the schedule is when it is a command, whatever PATH says.
_SHELL_WORDS = {
    "if", "for", "while", "until", "case", "test", "[", "[[", "cd", "command", "exec",
    "echo", "printf", "export", "source", ".", "true", "false", ":", "{", "(", "!",
}  # fmt: skip
_USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*\$?$")
MAIL_EVENTS = ("run.output", "run.failed")
MAIL_DOCS = "https://github.com/caronc/apprise/wiki/Notify_email"


class FormatMismatch(ValueError):
    """The file is in the other crontab format (user vs system)."""


@dataclass(frozen=True)
class Host:
    """What the conversion asks of the host it runs on."""

    name: str
    is_user: Callable[[str], bool]
    is_program: Callable[[str], bool]
    home_of: Callable[[str], str | None]  # an existing home directory, or None

    @classmethod
    def local(cls) -> Host:
        return cls(
            name=socket.gethostname() or "localhost",
            is_user=_local_user,
            is_program=_local_program,
            home_of=_local_home,
        )


def _local_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _local_program(name: str) -> bool:
    from cronwarden.config import DEFAULT_PATH

    return shutil.which(name, path=f"{DEFAULT_PATH}:{os.environ.get('PATH', '')}") is not None


def _local_home(user: str) -> str | None:
    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        return None
    return home if os.path.isdir(home) else None


@dataclass(frozen=True)
class Existing:
    """Names already taken in the file the output will be appended to."""

    tasks: frozenset[str] = frozenset()
    notify: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Conversion:
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> line
    notify: dict[str, dict[str, Any]] = field(default_factory=dict)  # new targets
    notes: dict[str, str] = field(default_factory=dict)  # target -> comment above it
    reused: dict[str, Any] = field(default_factory=dict)  # targets --config already has
    unmailed: int = 0  # tasks cron would have mailed to the crontab's owner
    warnings: list[str] = field(default_factory=list)
    left_out: int = 0  # lines or settings not carried over

    def leave_out(self, line_no: int, why: str) -> None:
        self.warnings.append(f"line {line_no}: {why}")
        self.left_out += 1

    def target(self, name: str) -> Any:
        return self.notify.get(name, self.reused.get(name))


@dataclass
class _Context:
    """What variable lines set for the entries after them."""

    env: dict[str, str] = field(default_factory=dict)
    shell: str | None = None
    zone: str | None = None
    jitter_minutes: int | None = None
    mailto: tuple[int, str] | None = None  # (line, value); None: unset
    mailfrom: str | None = None


@dataclass
class _Options:
    system: bool
    user: str | None
    existing: Existing
    host: Host


def convert(
    text: str,
    *,
    system: bool = False,
    user: str | None = None,
    existing: Existing | None = None,
    host: Host | None = None,
) -> Conversion:
    """Convert crontab text; raises FormatMismatch if it is plainly the other format."""
    host = host or Host.local()
    _check_format(text, system, host)
    options = _Options(system, user, existing or Existing(), host)
    result = Conversion()
    context = _Context()
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment and not line.startswith("@"):
            _assign(assignment.group(1), _unquote(assignment.group(2)), line_no, context, result)
            continue
        _entry(line, line_no, options, context, result)
    return result


# -- which format --------------------------------------------------------------------


def _split_entry(line: str) -> tuple[str, str] | None:
    """(schedule, the rest) of an entry line, or None if it is not one."""
    fields = line.split(None, 1)
    if fields[0].startswith("@"):
        return fields[0].lower(), fields[1] if len(fields) > 1 else ""
    parts = line.split(None, 5)
    if len(parts) < 6:
        return None
    return " ".join(parts[:5]), parts[5]


def _field_kind(word: str, after: str, host: Host) -> str | None:
    """The word after the schedule when it is plainly a "user" or a "command" (in
    ``after``, the word that follows, an option makes it a program, and nothing at all
    leaves a system entry without its command)."""
    looks_like_command = (
        word in _SHELL_WORDS
        or any(c in word for c in "/=$\"'`;&|<>(){}")
        or not _USER_NAME.match(word)
        or host.is_program(word)
    )
    is_user = word == "root" or (bool(_USER_NAME.match(word)) and host.is_user(word))
    if is_user and not looks_like_command and after and not after.startswith("-"):
        return "user"
    if looks_like_command and not is_user:
        return "command"
    return None


def _check_format(text: str, system: bool, host: Host) -> None:
    """Raises FormatMismatch when more entries show the other format than the one
    asked for.  A stray line of the other format in a file is converted as asked, as
    cron would read it (the loader then refuses a command given as a user)."""
    agree: list[int] = []
    other: dict[int, str] = {}
    expected = "user" if system else "command"
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or (_ASSIGNMENT.match(line) and line[0] != "@"):
            continue
        entry = _split_entry(line)
        if entry is None or not entry[1].split():
            continue
        words = entry[1].split()
        kind = _field_kind(words[0], words[1] if len(words) > 1 else "", host)
        if kind == expected:
            agree.append(line_no)
        elif kind is not None:
            other[line_no] = _mismatch(system, words[0])
    if len(other) > len(agree):
        first = min(other)
        raise FormatMismatch(f"line {first}: {other[first]}")


def _mismatch(system: bool, word: str) -> str:
    if system:
        return (
            f"the field after the schedule, {word!r}, is a command, not a user: this is a "
            "user crontab (as crontab -l prints), not a system one; drop --system and "
            "give --user NAME, the user whose crontab it is"
        )
    return (
        f"the field after the schedule, {word!r}, is a user, not a command: this is a "
        "system crontab (/etc/crontab, /etc/cron.d/*) with a user column; add --system"
    )


# -- variable lines --------------------------------------------------------------------


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _assign(name: str, value: str, line_no: int, context: _Context, result: Conversion) -> None:
    if name == "MAILTO":
        context.mailto = (line_no, value)
        return
    if name == "MAILFROM":
        context.mailfrom = value or None
        return
    if name == "SHELL":
        context.shell = None if value in ("/bin/sh", "sh") else value
        return
    if name == "CRON_TZ":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            result.leave_out(line_no, f"CRON_TZ={value}: unknown time zone; the host's is used")
            context.zone = None
            return
        context.zone = value
        return
    if name == "RANDOM_DELAY":
        if value.isdigit():
            context.jitter_minutes = int(value)
        else:
            result.leave_out(line_no, f"RANDOM_DELAY={value}: expected whole minutes")
        return
    context.env[name] = value


# -- entries ----------------------------------------------------------------------------


def _entry(
    line: str, line_no: int, options: _Options, context: _Context, result: Conversion
) -> None:
    entry = _split_entry(line)
    if entry is None:
        result.leave_out(line_no, f"not a crontab entry (5 time fields, then a command): {line}")
        return
    schedule, rest = entry
    if schedule.startswith("@") and schedule not in _MACROS:
        result.leave_out(line_no, f"unknown macro {schedule!r} (skipped): {line}")
        return
    user = options.user
    if options.system:
        pieces = rest.split(None, 1)
        if len(pieces) < 2:
            result.leave_out(line_no, f"system crontab entry without a user and a command: {line}")
            return
        user, rest = pieces
    command, stdin = _split_percent(rest.strip())
    if not command:
        result.leave_out(line_no, f"entry without a command: {line}")
        return
    try:
        parse_schedule(schedule, UTC)
    except ScheduleError as exc:
        result.leave_out(line_no, f"{exc} (skipped): {line}")
        return
    task = _task(command, stdin, schedule, user, options.host, context)
    target = _mail_target(context, options, result)
    if target is not None:
        task["notify"] = [target]
    elif context.mailto is None:
        result.unmailed += 1
    taken = {*options.existing.tasks, *result.tasks}
    name = unique_name(name_for(command), taken)
    result.tasks[name] = task
    result.sources[name] = (line_no, line)


def _task(
    command: str,
    stdin: str | None,
    schedule: str,
    user: str | None,
    host: Host,
    context: _Context,
) -> dict[str, Any]:
    task: dict[str, Any] = {"command": _with_input(command, stdin)}
    if context.shell is not None:
        task["command"] = [context.shell, "-c", task["command"]]
    task["schedule"] = schedule
    if schedule != "@reboot":
        task["catch_up"] = "skip"
    if context.zone is not None:
        task["timezone"] = context.zone
    if user is not None:
        task["user"] = user
    if context.env.get("HOME"):  # else the run starts in its user's home, as under cron
        task["working_dir"] = context.env["HOME"]
    if context.jitter_minutes:
        task["jitter"] = f"{context.jitter_minutes}m"
    if context.env:
        task["env"] = dict(context.env)
    return task


def _split_percent(text: str) -> tuple[str, str | None]:
    """The command, and its standard input if a ``%`` gave one (crontab(5))."""
    pieces: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] == "%":
            current.append("%")
            i += 2
            continue
        if char == "%":
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    pieces.append("".join(current))
    if len(pieces) == 1:
        return pieces[0].strip(), None
    return pieces[0].strip(), "\n".join(pieces[1:])


def _with_input(command: str, stdin: str | None) -> str:
    if stdin is None:
        return command
    marker = "CRONWARDEN_INPUT"
    while marker in stdin.splitlines():
        marker += "_"
    body = stdin if stdin.endswith("\n") else stdin + "\n"  # a here-document ends with one
    return f"{command} <<'{marker}'\n{body}{marker}"


# -- MAILTO -------------------------------------------------------------------------------


def mail_url(addresses: list[str], sender: str, server: str = "localhost:25") -> str:
    """An Apprise URL mailing ``addresses`` through the SMTP server at ``server``
    without a login.  Recipients go in the path: Apprise's ``to=`` list drops
    addresses without a dot in the domain, such as root@localhost.  ``mode=insecure``
    is plain SMTP (Apprise would otherwise insist on STARTTLS), meant for loopback."""
    recipients = "/".join(quote(address, safe="@") for address in addresses)
    return f"mailto://{server}/{recipients}?mode=insecure&from={quote(sender, safe='@')}"


def _mail_target(context: _Context, options: _Options, result: Conversion) -> str | None:
    """The name of the target for the current MAILTO, made on first use."""
    if context.mailto is None or not context.mailto[1].strip():
        return None
    line_no, value = context.mailto
    addresses = [a if "@" in a else f"{a}@localhost" for a in re.split(r"[\s,]+", value) if a]
    sender = context.mailfrom or f"cronwarden@{options.host.name}"
    table = {"type": "apprise", "urls": [mail_url(addresses, sender)], "events": list(MAIL_EVENTS)}
    for name, known in {**options.existing.notify, **result.notify}.items():
        if _same(known, table):  # one target per address list, also across files
            if name not in result.notify:
                result.reused[name] = known
            return name
    base = "mail-" + (re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip("-.") or "to")
    name = unique_name(base[:90], {*result.notify, *options.existing.notify})
    result.notify[name] = table
    result.notes[name] = (
        f"MAILTO={value} (line {line_no}): cron mailed what the entries after it printed.\n"
        "This target mails a run's output and its failures through the mail server on\n"
        "this host: localhost port 25, plain SMTP, no login. CHECK that a mail server\n"
        "(postfix, exim, ...) listens there and delivers to these addresses, or edit the\n"
        f"URL (Apprise mailto:// and mailtos:// syntax: {MAIL_DOCS})."
    )
    return name


def _same(a: Any, b: Mapping[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True)


# -- output --------------------------------------------------------------------------------


def read_existing(text: str) -> Existing:
    """The task and target names of a config file's text (tomllib errors propagate)."""
    import tomllib

    data = tomllib.loads(text)
    tasks = data.get("tasks", {})
    notify = data.get("notify", {})
    return Existing(
        tasks=frozenset(tasks) if isinstance(tasks, dict) else frozenset(),
        notify=dict(notify) if isinstance(notify, dict) else {},
    )


def render(
    text: str,
    *,
    system: bool,
    source: str,
    user: str | None = None,
    user_note: str = "",
    existing: Existing | None = None,
    host: Host | None = None,
) -> tuple[str, list[str], int]:
    """TOML for the converted tasks (each after a comment quoting its line), the
    warnings, and how much was left out.  Each task is checked by the config loader
    itself, with the targets it uses, so what is printed loads; a task it refuses is
    left out, saying why.  Raises FormatMismatch."""
    import tomli_w

    from cronwarden.config import parse_config
    from cronwarden.errors import ConfigError

    result = convert(text, system=system, user=user, existing=existing, host=host)
    blocks = [_header(source, user, user_note, result)]
    for name, table in result.notify.items():
        note = "".join(f"# {line}\n" for line in result.notes[name].splitlines())
        blocks.append(f"\n{note}{tomli_w.dumps({'notify': {name: table}})}")
    for name, task in result.tasks.items():
        line_no, line = result.sources[name]
        block = tomli_w.dumps({"tasks": {name: task}})
        targets = {t: result.target(t) for t in task.get("notify", [])}
        check = tomli_w.dumps({"notify": targets}) + block if targets else block
        try:
            parse_config(check, Path(source))
        except ConfigError as exc:
            result.leave_out(line_no, f"not converted: {'; '.join(exc.problems)}")
            continue
        quoted = line.replace("\n", " ")
        blocks.append(f"\n# line {line_no}: {quoted}\n{block}")
    return "".join(blocks), result.warnings, result.left_out


def _header(source: str, user: str | None, user_note: str, result: Conversion) -> str:
    lines = [
        f"Converted from {source} by cronwarden import-crontab.",
        'Cron does not catch up on missed runs, so neither do these (catch_up = "skip").',
        "Cron starts a command in its HOME: so does cronwarden (the run user's home, else /;",
        "a HOME= line of the crontab becomes working_dir).",
    ]
    if user is not None:
        lines.append(f'A user crontab runs as its owner: these tasks run as user = "{user}"')
        if user_note:
            lines.append(user_note)
    if result.unmailed:
        lines.append(
            "Cron mailed the output of entries without MAILTO to the crontab's owner; those"
        )
        lines.append("tasks send no mail: add a [notify.NAME] target to their notify lists.")
    return "".join(f"# {line}\n" for line in lines)
