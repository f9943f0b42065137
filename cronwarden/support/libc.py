"""The C library's own functions that Python does not wrap (prctl, mallopt,
malloc_trim), looked up once by name."""

from __future__ import annotations

import ctypes
import functools
from typing import Any


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def libc_function(name: str) -> Any:
    """The C library's function ``name``, or None where it has none (not glibc, or
    no C library to load)."""
    return getattr(_libc(), name, None)
