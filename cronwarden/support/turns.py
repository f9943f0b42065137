"""Long walks in the event loop's thread that let other work in as they go."""

from __future__ import annotations

import asyncio


async def share_the_loop(done: int, every: int) -> None:
    """Let the loop turn once every ``every`` items of a walk (``done`` of them so far):
    /health, signals, exits and fires already due get their turn between slices."""
    if done and done % every == 0:
        await asyncio.sleep(0)
