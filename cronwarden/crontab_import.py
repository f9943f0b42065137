"""crontab(5) -> cronwarden tasks: pure text in, tasks and warnings out.

What cron does and how each part is carried over:

* ``NAME=value`` lines set variables for the entries after them (quotes stripped, as
  cronie does): they become each later task's ``env``.  ``SHELL`` runs the command
  with that shell instead of /bin/sh; ``CRON_TZ`` is the zone of the schedules after
  it; ``TZ`` is passed to the commands, as cron does; ``RANDOM_DELAY`` (cronie,
  minutes) becomes ``jitter``; ``MAILTO`` cannot be carried over (cronwarden sends no
  mail: alerts go to ``[notify.*]`` targets) and is reported.
* ``@reboot`` and the other macros keep their names; 5 fields are read as written.
* A ``%`` in a command ends the command; what follows is its standard input, each
  further ``%`` a newline; ``\\%`` is a literal ``%``.  The input becomes a here-document.
* The system format (``--system``: /etc/crontab, /etc/cron.d) has a user column: it
  becomes ``user``.
* Cron never runs what it missed while down: every task gets ``catch_up = "skip"``.

Anything that cannot be converted is a warning naming its line; nothing is dropped
silently.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
# A task is named after the program it runs: a segment that only prepares (cd, test)
# is passed over, and so are wrappers with the arguments they take before the program.
_PREPARES = {"cd", "test", "[", "true", "sleep", "mkdir", "export", "source", ".", "umask"}
_WRAPPERS = {  # wrapper -> arguments it takes before the program (options aside)
    "sudo": 0, "nice": 0, "ionice": 0, "env": 0, "exec": 0, "chronic": 0, "nohup": 0,
    "run-one": 0, "flock": 1, "setlock": 1, "timeout": 1, "setsid": 0, "stdbuf": 0,
}  # fmt: skip
_OPTIONS_WITH_VALUES = {"-u", "-g", "-c", "-w", "-E", "-s", "-k"}
_SEPARATORS = re.compile(r"&&|\|\||;|\|")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Conversion:
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> line
    warnings: list[str] = field(default_factory=list)
    left_out: int = 0  # lines or settings not carried over

    def leave_out(self, line_no: int, why: str) -> None:
        self.warnings.append(f"line {line_no}: {why}")
        self.left_out += 1


@dataclass
class _Context:
    """What variable lines set for the entries after them."""

    env: dict[str, str] = field(default_factory=dict)
    shell: str | None = None
    zone: str | None = None
    jitter_minutes: int | None = None


def convert(text: str, *, system: bool = False) -> Conversion:
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
        _entry(line, line_no, system, context, result)
    return result


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _assign(name: str, value: str, line_no: int, context: _Context, result: Conversion) -> None:
    if name == "MAILTO" or name == "MAILFROM":
        if value:
            result.leave_out(
                line_no,
                f"{name}={value} not carried over: cronwarden sends no mail; define a "
                '[notify.NAME] target (type = "command" can run your mailer) and add it '
                "to the tasks' notify lists",
            )
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


def _entry(line: str, line_no: int, system: bool, context: _Context, result: Conversion) -> None:
    fields = line.split(None, 1)
    if fields[0].startswith("@"):
        macro = fields[0].lower()
        if macro not in _MACROS:
            result.leave_out(line_no, f"unknown macro {fields[0]!r} (skipped): {line}")
            return
        schedule, rest = macro, fields[1] if len(fields) > 1 else ""
    else:
        parts = line.split(None, 5)
        if len(parts) < 6:
            result.leave_out(
                line_no, f"not a crontab entry (5 time fields, then a command): {line}"
            )
            return
        schedule, rest = " ".join(parts[:5]), parts[5]
    user = None
    if system:
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
    task: dict[str, Any] = {"command": _with_input(command, stdin)}
    if context.shell is not None:
        task["command"] = [context.shell, "-c", task["command"]]
    if schedule != "@reboot":
        task["schedule"] = schedule
        task["catch_up"] = "skip"
    else:
        task["schedule"] = "@reboot"
    if context.zone is not None:
        task["timezone"] = context.zone
    if user is not None:
        task["user"] = user
    if context.jitter_minutes:
        task["jitter"] = f"{context.jitter_minutes}m"
    if context.env:
        task["env"] = dict(context.env)
    name = _unique_name(_name_for(command), result.tasks)
    result.tasks[name] = task
    result.sources[name] = (line_no, line)


def _split_percent(text: str) -> tuple[str, str | None]:
    """The command, and its standard input if a ``%`` gave one (crontab(5))."""
    pieces: list[str] = []
    current = []
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


def _name_for(command: str) -> str:
    for segment in _SEPARATORS.split(command):
        try:
            words = shlex.split(segment)
        except ValueError:
            words = segment.split()
        program = _program_of(words)
        if program is None:
            continue
        slug = _NAME_UNSAFE.sub("-", os.path.basename(program.rstrip("/"))).strip("-.")
        if slug:
            return slug[:80]
    return "job"


def _program_of(words: list[str]) -> str | None:
    """The program a command segment runs, past assignments and wrappers; None if the
    segment only prepares."""
    skip = 0
    previous = ""
    for word in words:
        base = os.path.basename(word)
        if "=" in word and not word.startswith(("/", ".")):
            continue  # VAR=value
        if word.startswith("-") or word.isdigit():  # options, and nice -n 10
            previous = word
            continue
        if previous in _OPTIONS_WITH_VALUES:
            previous = ""
            continue
        if skip:
            skip -= 1
            continue
        if base in _PREPARES:
            return None
        if base in _WRAPPERS:
            skip = _WRAPPERS[base]
            continue
        return word
    return None


def _unique_name(name: str, taken: dict[str, Any]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def render(text: str, *, system: bool, source: str) -> tuple[str, list[str], int]:
    """TOML for the converted tasks (each after a comment quoting its line), the
    warnings, and how much was left out.  The TOML is checked by the config loader
    itself, so what is printed loads; a task it refuses is left out, saying why."""
    import tomli_w

    from cronwarden.config import parse_config
    from cronwarden.errors import ConfigError

    result = convert(text, system=system)
    blocks = [
        f"# Converted from {source} by cronwarden import-crontab. Cron does not catch up"
        ' on\n# missed runs, so neither do these (catch_up = "skip"). Cron starts'
        " commands in the\n# user's home directory; cronwarden in working_dir"
        " (default: data_dir).\n"
    ]
    for name, task in result.tasks.items():
        line_no, line = result.sources[name]
        block = tomli_w.dumps({"tasks": {name: task}})
        try:
            parse_config(block, Path(source))
        except ConfigError as exc:
            result.leave_out(line_no, f"not converted: {'; '.join(exc.problems)}")
            continue
        quoted = line.replace("\n", " ")
        blocks.append(f"\n# line {line_no}: {quoted}\n{block}")
    return "".join(blocks), result.warnings, result.left_out
