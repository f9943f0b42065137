"""Where the kernel puts the daemon's orphans: the sweep reads only the main thread's
children, so an orphan whose parent was forked by another thread (one still alive,
or one gone since) must be listed there too.  In an interpreter of its own: making a
test worker a subreaper would hand it the orphans of every later test."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SWEEP_FROM_A_SUBREAPER = textwrap.dedent(
    """
    import os, subprocess, sys, threading, time
    from cronwarden.host.subreaper import RUN_ID_VARIABLE, Orphanage, become_subreaper

    assert become_subreaper()
    orphanage = Orphanage()
    gate_r, gate_w = os.pipe()

    def leave_an_orphan(run_id, then_wait):
        env = {"PATH": os.environ["PATH"], RUN_ID_VARIABLE: run_id}
        # The child leaves a grandchild in a session of its own and exits.
        subprocess.run(
            ["/bin/sh", "-c", f"setsid sh -c 'read -r _ <&{gate_r}' & exit 0"],
            env=env, pass_fds=(gate_r,), check=True,
        )
        then_wait.wait()

    hold = threading.Event()
    alive = threading.Thread(target=leave_an_orphan, args=("run-alive", hold))
    alive.start()
    ended = threading.Event()
    ended.set()
    gone = threading.Thread(target=leave_an_orphan, args=("run-gone", ended))
    gone.start()
    gone.join()
    deadline = time.monotonic() + 30
    found = set()
    while time.monotonic() < deadline and found != {"run-alive", "run-gone"}:
        found = {orphan.run_id for orphan in orphanage.sweep()[0]}
        time.sleep(0.02)
    os.write(gate_w, b"\\n\\n")
    hold.set()
    print(sorted(found))
    """
)


def test_orphans_left_by_runs_spawned_from_any_thread_are_swept() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SWEEP_FROM_A_SUBREAPER],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['run-alive', 'run-gone']"
