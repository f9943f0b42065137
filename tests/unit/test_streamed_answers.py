"""Answers written piece by piece (the task list, /metrics): a failure before the first
piece is an ordinary error answer; one after it must never look like a whole answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cronwarden.api.streams import streamed


class Broken(Exception):
    pass


async def pieces(fail_after: int | None) -> AsyncIterator[bytes]:
    for i in range(3):
        if i == fail_after:
            raise Broken(f"piece {i}")
        yield f"[{i}]".encode()


def app_of(fail_after: int | None) -> web.Application:
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await streamed(request, "text/plain", pieces(fail_after))
        except Broken:  # before any piece: the handler still answers as it likes
            return web.Response(status=503, text="not now")

    app = web.Application()
    app.router.add_get("/", answer)
    return app


async def client_of(fail_after: int | None) -> TestClient[web.Request, web.Application]:
    client = TestClient(TestServer(app_of(fail_after)))
    await client.start_server()
    return client


@pytest.mark.parametrize(
    ("fail_after", "check"),
    [
        (None, lambda status, body: status == 200 and body == b"[0][1][2]"),
        (0, lambda status, body: status == 503 and body == b"not now"),
    ],
    ids=["whole", "failed-before-the-first-piece"],
)
async def test_an_answer_whole_or_refused(
    fail_after: int | None, check: Callable[[int, bytes], bool]
) -> None:
    client = await client_of(fail_after)
    try:
        response = await client.get("/")
        assert check(response.status, await response.read())
    finally:
        await client.close()


async def test_a_failure_after_the_first_piece_cuts_the_answer_short(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await client_of(2)
    try:
        response = await client.get("/")
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()  # the first pieces came, the end never did
    finally:
        await client.close()
    assert "api.answer_cut_short" in capsys.readouterr().out
