"""Start checks that need no process: clear reasons before anything is forked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cronwarden.errors import StartFailed
from cronwarden.runners import identity
from cronwarden.runners.identity import resolve_identity
from cronwarden.runners.process import ProcessSpec, _check_start, proc_stat


def test_switching_user_without_root_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity.os, "geteuid", lambda: 1000)
    with pytest.raises(StartFailed, match="not running as root"):
        resolve_identity("nobody", None)


def test_no_identity_change_needs_no_privilege(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity.os, "geteuid", lambda: 1000)
    assert resolve_identity(None, None).uid is None


@pytest.mark.skipif(os.geteuid() != 0, reason="resolving a switch needs root")
def test_a_user_brings_its_own_group_groups_and_home() -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    who = resolve_identity("nobody", None)
    assert (who.uid, who.gid) == (nobody.pw_uid, nobody.pw_gid)
    assert who.groups is not None and 0 not in who.groups  # none of root's groups
    assert who.env == {"HOME": nobody.pw_dir, "USER": "nobody", "LOGNAME": "nobody"}
    with pytest.raises(StartFailed, match="unknown user"):
        resolve_identity("no-such-user-here", None)
    with pytest.raises(StartFailed, match="unknown group"):
        resolve_identity("nobody", "no-such-group-here")


def test_working_dir_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("")
    with pytest.raises(StartFailed, match="is not a directory"):
        _check_start(ProcessSpec(argv=["/bin/true"], env={}, cwd=file))


def test_proc_stat_of_this_process_and_of_none() -> None:
    stat = proc_stat(os.getpid())
    assert stat is not None and stat.state in "RS" and stat.start_ticks > 0
    assert proc_stat(2**22 + 12345) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="resolving a switch needs root")
def test_the_daemons_own_identity_is_not_a_switch() -> None:
    """user = "root" under a root daemon (imported system crontabs) keeps the fast
    spawn path: no uid/gid/groups to set, only the environment login would give."""
    import pwd

    me = pwd.getpwuid(os.geteuid())
    same = resolve_identity(me.pw_name, None)
    assert (same.uid, same.gid, same.groups) == (None, None, None)
    assert same.env["USER"] == me.pw_name and same.env["HOME"] == me.pw_dir
    other_group = resolve_identity(me.pw_name, "nogroup")
    assert other_group.gid is not None  # a different group is still a switch
