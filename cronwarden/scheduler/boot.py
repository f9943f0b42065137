"""``@reboot`` as cron means it: once per machine boot, on each node.

A daemon restart (an upgrade, ``Restart=on-failure``, a reload of the unit) is not a
boot: jobs such as ``@reboot start-worker.sh`` must not start a second worker.  The
kernel names each boot with a random ``boot_id``; the ledger keeps, in data_dir (one
per node), the boot it last saw and the @reboot tasks already fired in that boot.  A
task added to the config later in the same boot fires at the next daemon start, once.

The ledger is written before the fires are handed to the scheduler: a daemon that dies
in between does not fire them again in that boot (at most once, as cron), and each
fire that was handed over is then recorded as a run like any other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import structlog

log = structlog.get_logger("cronwarden.scheduler")

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
# Where the kernel's boot id is read; tests and containers whose /proc is not the
# host's may point it elsewhere.  The daemon's control variable, never passed to runs.
BOOT_ID_VARIABLE = "CRONWARDEN_BOOT_ID_FILE"
LEDGER_NAME = "reboot-fired.json"


def current_boot_id(source: Path | None = None) -> str | None:
    """The kernel's id of this boot, or None where it cannot be read (then every
    daemon start counts as a boot, as before; said in the log)."""
    path = source or Path(os.environ.get(BOOT_ID_VARIABLE) or BOOT_ID_FILE)
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("reboot.boot_id_unreadable", path=str(path), error=str(exc))
        return None


class RebootLedger:
    """Which @reboot tasks already fired in this boot, kept in data_dir."""

    def __init__(self, data_dir: Path, boot_id: str | None) -> None:
        self.path = data_dir / LEDGER_NAME
        self.boot_id = boot_id

    def claim(self, names: Iterable[str]) -> list[str]:
        """The tasks among ``names`` still to fire in this boot, marked fired."""
        wanted = list(names)
        if self.boot_id is None:
            return wanted
        fired = self._fired_this_boot()
        due = [name for name in wanted if name not in fired]
        if due:
            self._write(sorted(fired | set(due)))
        skipped = [name for name in wanted if name in fired]
        if skipped:
            log.info("reboot.already_fired", tasks=skipped, boot_id=self.boot_id)
        return due

    def _fired_this_boot(self) -> set[str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            log.warning("reboot.ledger_unreadable", path=str(self.path), error=str(exc))
            return set()
        if not isinstance(data, dict) or data.get("boot_id") != self.boot_id:
            return set()  # another boot: everything fires again
        tasks = data.get("tasks")
        return {t for t in tasks if isinstance(t, str)} if isinstance(tasks, list) else set()

    def _write(self, tasks: list[str]) -> None:
        """Replace the ledger atomically (private, like every file in data_dir)."""
        temporary = self.path.with_suffix(".tmp")
        body = json.dumps({"boot_id": self.boot_id, "tasks": tasks})
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
