from __future__ import annotations

from cronwarden.model import EndReason
from cronwarden.runners.outcome import classify


def test_exit_codes_and_signals_are_never_confused() -> None:
    ok = classify(0, forced=None, success_exit_codes=[0], via_shell=True)
    assert (ok.end_reason, ok.exit_code, ok.signal) == (EndReason.SUCCESS, 0, None)
    killed = classify(-9, forced=None, success_exit_codes=[0], via_shell=True)
    assert (killed.end_reason, killed.exit_code, killed.signal) == (EndReason.FAILED, None, 9)
    exited = classify(137, forced=None, success_exit_codes=[0], via_shell=False)
    assert (exited.exit_code, exited.signal) == (137, None)


def test_success_exit_codes() -> None:
    assert (
        classify(3, forced=None, success_exit_codes=[0, 3], via_shell=False).end_reason
        is EndReason.SUCCESS
    )


def test_forced_end_wins() -> None:
    out = classify(-15, forced=EndReason.TIMEOUT, success_exit_codes=[0], via_shell=True)
    assert (out.end_reason, out.signal) == (EndReason.TIMEOUT, 15)


def test_shell_not_found_is_explained() -> None:
    out = classify(127, forced=None, success_exit_codes=[0], via_shell=True)
    assert out.end_reason is EndReason.FAILED and "command not found" in (out.error or "")
