"""The architecture as tests: which part of cronwarden may import which, and how long a
class or a function may grow.  Read from the source with ``ast``; nothing is imported.

Every rule is a plain assert: breaking one fails at once.  The layers, bottom up:
support and the domain (model, reservations, outcomes, config), store and runlog,
scheduler and runners (each reaching the other and the database only through ports),
then alerts, fleet, api, daemon and cli.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cronwarden"
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True)
class Module:
    name: str  # cronwarden.scheduler.service
    path: Path
    tree: ast.Module

    @property
    def part(self) -> str:
        """The package part it belongs to: scheduler, runners, store, api, or the module
        itself for one at the package root (daemon, fleet, ...)."""
        return self.name.split(".")[1] if "." in self.name else ""


def _modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(Module(".".join(parts), path, ast.parse(path.read_text(), str(path))))
    return found


MODULES = _modules()


def _imported(module: Module) -> Iterator[str]:
    """Every cronwarden module ``module`` imports, at run time or for type checking
    alike: a type-only import of a concrete class is still a dependency on it."""
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            # `from cronwarden import api` imports the module cronwarden.api
            yield from (f"{target}.{alias.name}" for alias in node.names)


def _part_of(target: str) -> str | None:
    if target != "cronwarden" and not target.startswith("cronwarden."):
        return None
    parts = target.split(".")
    return parts[1] if len(parts) > 1 else ""


KNOWN_PARTS = {m.part for m in MODULES}


def import_offenders(source: str, forbidden: set[str]) -> set[str]:
    """ "importer -> imported" for each import from the part ``source`` into a part of
    ``forbidden``."""
    offenders = set()
    for module in MODULES:
        if module.part != source:
            continue
        for target in _imported(module):
            part = _part_of(target)
            if part in forbidden and part in KNOWN_PARTS:
                offenders.add(f"{module.name} -> {_known_module(target)}")
    return offenders


def _known_module(target: str) -> str:
    """The module an import names (``from x import Name`` also yields x.Name)."""
    names = {m.name for m in MODULES}
    while target not in names and "." in target:
        target = target.rpartition(".")[0]
    return target


def _defs(kinds: tuple[type[ast.AST], ...]) -> Iterator[tuple[str, int]]:
    for module in MODULES:
        for node in ast.walk(module.tree):
            if isinstance(node, kinds):
                assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                yield f"{module.name}:{node.name}", lines


def too_long(kinds: tuple[type[ast.AST], ...], limit: int) -> dict[str, int]:
    return {name: lines for name, lines in _defs(kinds) if lines > limit}


CLASSES = (ast.ClassDef,)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


# -- what holds today, locked in --------------------------------------------------------

ABOVE_THE_CORE = {"api", "daemon", "cli", "fleet", "alerts", "__main__"}
IMPORT_RULES_HELD = {
    # The store is the bottom: it knows models, not who uses them.
    "store-imports-no-user": ("store", {"scheduler", "runners", "retention", *ABOVE_THE_CORE}),
    "scheduler-imports-no-store": ("scheduler", {"store", *ABOVE_THE_CORE}),
    "runners-import-nothing-above": ("runners", ABOVE_THE_CORE),
    # The scheduler times fires and hands them on through its port (scheduler/ports.py);
    # the run core reaches the database through cronwarden/ports.py, and shares the
    # retry rule with alerts through cronwarden/retry_policy.py.
    "scheduler-imports-no-runners": ("scheduler", {"runners"}),
    "runners-import-no-store": ("runners", {"store"}),
    "runners-import-no-scheduler": ("runners", {"scheduler"}),
    # Run logs are written by runners and read by the API; they call on neither.
    "runlog-imports-no-core": ("runlog", {"store", "scheduler", "runners", *ABOVE_THE_CORE}),
    "alerts-import-no-runners-or-api": ("alerts", {"runners", "api", "daemon", "cli", "fleet"}),
    # The model and config are read by every part; the model imports none of them,
    # config only the scheduler's pure triggers and policies (to check schedules).
    "model-imports-no-part": (
        "model",
        {"store", "scheduler", "runners", "reservations", *ABOVE_THE_CORE},
    ),
    "config-imports-no-core": ("config", {"store", "runners", *ABOVE_THE_CORE}),
    # What a reservation is (reservations.py) is domain: the store, the scheduler and
    # the run core all follow it, and it follows none of them.
    "reservations-import-no-part": (
        "reservations",
        {"store", "scheduler", "runners", *ABOVE_THE_CORE},
    ),
    # Only the daemon wires the app; the CLI reads the OpenAPI routes to print them.
    "api-imports-no-daemon-or-cli": ("api", {"daemon", "cli"}),
}


@pytest.mark.parametrize(("source", "forbidden"), IMPORT_RULES_HELD.values(), ids=IMPORT_RULES_HELD)
def test_import_rules_that_hold(source: str, forbidden: set[str]) -> None:
    assert source in KNOWN_PARTS, f"no part of cronwarden is named {source}"
    offenders = import_offenders(source, forbidden)
    assert not offenders, "forbidden imports:\n" + "\n".join(sorted(offenders))


def test_only_the_daemon_and_the_cli_import_the_api() -> None:
    importers = {
        m.name
        for m in MODULES
        if m.part not in ("api", "daemon", "cli")
        and any(_part_of(t) == "api" for t in _imported(m))
    }
    assert not importers, f"the API is imported by {sorted(importers)}"


def test_the_api_imports_runners_only_for_types() -> None:
    """Handlers ask the dispatcher through Services; no handler starts a process."""
    for module in (m for m in MODULES if m.part == "api"):
        for node in module.tree.body:  # module-level imports are the ones run at import
            if isinstance(node, ast.ImportFrom) and node.module:
                assert _part_of(node.module) != "runners", f"{module.name} imports {node.module}"


def test_the_keeper_imports_the_standard_library_only() -> None:
    """It runs as a script beside the daemon (``python -I -S keeper.py``): an import of
    cronwarden would fail there, and any other would cost it memory."""
    keeper = next(m for m in MODULES if m.name == "cronwarden.keeper")
    imported = {target.split(".")[0] for target in _imported(keeper)}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_no_class_over_300_lines() -> None:
    long = too_long(CLASSES, MAX_CLASS_LINES)
    assert not long, f"classes over {MAX_CLASS_LINES} lines: {sorted(long.items())}"


def test_no_function_over_60_lines() -> None:
    long = too_long(FUNCTIONS, MAX_FUNCTION_LINES)
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {sorted(long.items())}"


def test_the_checks_read_the_package() -> None:
    """A path or parse gone wrong would make every rule pass vacuously."""
    names = {m.name for m in MODULES}
    assert {"cronwarden.scheduler.service", "cronwarden.store.runs", "cronwarden.daemon"} <= names
    assert len(import_offenders("daemon", {"store"})) > 0
    assert too_long(FUNCTIONS, 1)
