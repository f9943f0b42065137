"""Task names for imported crontab entries: named after the program an entry runs.

A crontab line rarely starts with the program it is for: Debian's own files open with
guards (``[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then``),
wrappers (``flock -n LOCK``, ``timeout 2h``, ``nice -n 10``) and set-up (``cd DIR &&``,
``VAR=value``).  Naming a task after its first word gave five tasks called ``if`` on a
stock Debian host, so the name comes from the program that does the work:

* guards and set-up segments (``test``, ``[``, ``command -v``, ``cd``, ...) are passed
  over, and so are shell keywords (``if``, ``then``, ``{`` ...);
* wrappers are passed over with their options and the arguments they take before the
  program (``flock``'s lock file, ``timeout``'s duration); ``flock -c CMD`` and
  ``sh -c CMD`` are named after CMD;
* ``run-parts DIR`` is named after DIR (``cron.daily``), ``invoke-rc.d NAME`` and
  ``service NAME`` after the service;
* a program under ``/usr/lib/PKG/``, ``/usr/libexec/PKG/`` or ``/usr/share/PKG/`` takes
  its package as a prefix (``/usr/lib/php/sessionclean`` -> ``php-sessionclean``);
* an interpreter given a script is named after the script; inline code
  (``perl -e 'sleep ...'``) and ``echo``/``printf`` are used only when nothing else runs.

Pure text in, names out: no file system or user lookups.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Container
from pathlib import PurePosixPath

MAX_NAME = 100
_BASE_MAX = 80  # room for a "-NNN" suffix
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SUBSTITUTION = re.compile(r"\$\([^()]*\)|`[^`]*`")
_MULTIARCH = re.compile(r"^[a-z0-9_]+-linux-[a-z0-9_]+$")
_SEPARATORS = {"&&", "||", ";", "|", "&", "|&", ";;", "(", ")", "\n"}
_KEYWORDS = {
    "if", "then", "elif", "else", "fi", "do", "done", "while", "until", "for", "case",
    "esac", "!", "{", "}", "time", "exec", "nohup", "setsid",
}  # fmt: skip
# A segment that starts with one of these only checks or prepares: it names nothing.
_PREPARES = {
    "test", "[", "[[", "true", "false", ":", "cd", "pushd", "sleep", "mkdir", "export",
    "source", ".", "umask", "set", "ulimit", "unset", "trap", "wait", "exit", "return",
}  # fmt: skip
# wrapper -> (options that take a value, arguments before the program)
_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "nice": (frozenset({"-n", "--adjustment"}), 0),
    "ionice": (frozenset({"-c", "--class", "-n", "--classdata", "-p", "-P", "-u"}), 0),
    "timeout": (frozenset({"-s", "--signal", "-k", "--kill-after"}), 1),
    "flock": (frozenset({"-w", "--wait", "--timeout", "-E", "--conflict-exit-code"}), 1),
    "setlock": (frozenset(), 1),
    "lckdo": (frozenset({"-w"}), 1),
    "chronic": (frozenset(), 0),
    "cronic": (frozenset(), 0),
    "env": (frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}), 0),
    "sudo": (frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"}), 0),
    "command": (frozenset(), 0),
    "stdbuf": (frozenset({"-i", "-o", "-e"}), 0),
    "run-one": (frozenset(), 0),
    "systemd-cat": (frozenset({"-t", "--identifier", "-p", "--priority"}), 0),
    "nocache": (frozenset(), 0),
}
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh"}
_INTERPRETERS = _SHELLS | {"perl", "python", "python2", "python3", "ruby", "php", "node"}
_INLINE_CODE = {"-e", "-E", "-c", "-r"}  # perl/ruby/node -e, python -c, php -r
_ECHOES = {"echo", "printf", "cat", "logger"}
_NAMED_BY_ARGUMENT = {"invoke-rc.d", "service"}  # named after the service they act on


def name_for(command: str) -> str:
    """A task name for ``command``: its main program (see the module docstring)."""
    strong, weak = _candidates(command)
    name = strong or weak or "job"
    return _slug(name) or "job"


def unique_name(name: str, taken: Container[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... : the first not in ``taken``."""
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def _slug(text: str) -> str:
    return _NAME_UNSAFE.sub("-", text).strip("-.")[:_BASE_MAX].strip("-.")


def _candidates(command: str) -> tuple[str | None, str | None]:
    """The first program that does the work, and the first weak one (inline code,
    echo) to fall back on."""
    weak: str | None = None
    for words in _segments(command):
        found = _program(words)
        if found is None:
            continue
        name, strong = found
        if strong:
            return name, weak
        weak = weak or name
    return None, weak


def _segments(command: str) -> list[list[str]]:
    """Words of each simple command, split at ``&&``, ``||``, ``;``, ``|``, ``&``
    and parentheses; command substitutions are dropped (they compute arguments)."""
    text = command
    while True:
        stripped = _SUBSTITUTION.sub("X", text)
        if stripped == text:
            break
        text = stripped
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: read it as plain words
        tokens = text.split()
    segments: list[list[str]] = [[]]
    skip_next = False
    for i, token in enumerate(tokens):
        if skip_next:
            skip_next = False
            continue
        if token in _SEPARATORS:
            segments.append([])
            continue
        if _is_redirect(token):
            skip_next = True  # its target
            continue
        if token.isdigit() and i + 1 < len(tokens) and _is_redirect(tokens[i + 1]):
            continue  # the descriptor of 2>/dev/null
        segments[-1].append(token)
    return [words for words in segments if words]


def _is_redirect(token: str) -> bool:
    return bool(token) and set(token) <= set("<>&|") and token not in _SEPARATORS


def _program(words: list[str]) -> tuple[str, bool] | None:
    """(name, strong) for one simple command; None if it only checks or prepares."""
    i = 0
    while i < len(words):
        word = words[i]
        base = PurePosixPath(word).name if word not in ("/", "") else word
        if _ASSIGNMENT.match(word) or word in _KEYWORDS:
            i += 1
            continue
        if base in _PREPARES:
            return None
        if base == "command" and i + 1 < len(words) and words[i + 1] in ("-v", "-V"):
            return None  # command -v NAME: a check
        if base in _WRAPPERS:
            i = _past_wrapper(words, i + 1, *_WRAPPERS[base])
            if base == "flock" and i < len(words) and words[i] in ("-c", "--command"):
                return _inline(words[i + 1 : i + 2])
            continue
        return _named(base, word, words[i + 1 :])
    return None


def _past_wrapper(words: list[str], i: int, takes_value: frozenset[str], before: int) -> int:
    """Index of the program a wrapper runs: past its options, then ``before``
    positional arguments."""
    while i < len(words):
        word = words[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break
        i += 2 if word in takes_value else 1
    return i + before


def _inline(code: list[str]) -> tuple[str, bool] | None:
    if not code:
        return None
    strong, weak = _candidates(code[0])
    if strong:
        return strong, True
    return (weak, False) if weak else None


def _named(base: str, word: str, args: list[str]) -> tuple[str, bool]:
    positional = [a for a in args if not a.startswith("-")]
    if base == "run-parts" and positional:
        return PurePosixPath(positional[-1].rstrip("/") or "/").name or base, True
    if base in _NAMED_BY_ARGUMENT and positional:
        return positional[0], True
    if base in _INTERPRETERS:
        return _interpreted(base, args)
    if base in _ECHOES:
        return base, False
    return _path_name(word), True


def _interpreted(base: str, args: list[str]) -> tuple[str, bool]:
    """An interpreter is named after its script; inline code is weak."""
    i = 0
    while i < len(args):
        arg = args[i]
        if base in _SHELLS and arg == "-c":
            return _inline(args[i + 1 : i + 2]) or (base, False)
        if arg in _INLINE_CODE:
            return base, False
        if arg == "-m" and i + 1 < len(args):  # python -m module
            return args[i + 1], True
        if arg.startswith("-"):
            i += 1
            continue
        return _path_name(arg), True
    return base, True


def _path_name(path: str) -> str:
    """The program's file name, with its package before it when it lives in a
    package's private directory (/usr/lib/php/sessionclean -> php-sessionclean)."""
    parts = PurePosixPath(path).parts
    base = parts[-1] if parts else path
    if len(parts) >= 5 and parts[:2] == ("/", "usr") and parts[2] in _PRIVATE_DIRS:
        packages = [p for p in parts[3:-1] if not _MULTIARCH.match(p)]
        if packages and packages[0] not in _NOT_PACKAGES and not base.startswith(packages[0]):
            return f"{packages[0]}-{base}"
    return base


_PRIVATE_DIRS = {"lib", "lib64", "libexec", "share"}
_NOT_PACKAGES = {"cgi-bin", "bin", "sbin"}
