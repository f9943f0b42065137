"""What the daemon frees goes back to the system: glibc keeps freed blocks inside its
heaps, where they count in RSS until something trims them."""

from __future__ import annotations

import asyncio
import os
import platform

import pytest

from cronwarden.support.heap import give_back_free_memory


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
async def test_freed_memory_inside_the_heap_goes_back_to_the_system() -> None:
    # 64 MB in 16 KiB blocks (malloc's heap, not mmap), every eighth kept: the rest is
    # free but pinned below the kept ones, where the heap cannot shrink by itself.
    blocks = [bytearray(16 * 1024) for _ in range(4096)]
    kept = blocks[::8]
    del blocks
    before = rss_mb()
    trimming = asyncio.create_task(give_back_free_memory(every=0.01))
    for _ in range(600):  # up to 30 s on a loaded machine
        if rss_mb() <= before - 30:
            break
        await asyncio.sleep(0.05)
    trimming.cancel()
    assert rss_mb() <= before - 30, (before, rss_mb())
    assert len(kept) == 512
