"""Delivering alerts through Apprise: mail over SMTP, Slack, Teams, Telegram, ntfy,
Gotify, PagerDuty, Matrix and the rest, one ``urls`` entry each.

Apprise is imported the first time a target of type "apprise" sends, never before:
it loads a few hundred modules, and a daemon without such a target should not pay for
them in memory or start-up time.  The import and the parsing of URLs run on a thread;
the sends go through ``async_notify``, which runs each service's blocking I/O on
Apprise's own thread pool, so the event loop never waits on a mail server.

Apprise URLs carry credentials (``mailto://user:password@...``, Slack tokens), so
nothing here ever shows one: a failure names the target, the URL's position in
``urls`` and its scheme, and Apprise's own log lines (which may quote a host, a user
or a token) are kept out of the daemon's log.

A retry goes only to the URLs that failed: one dead chat webhook must not send the
same mail three more times.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cronwarden.alerts import wording
from cronwarden.alerts.senders import SendFailed
from cronwarden.config import NotifyConfig

if TYPE_CHECKING:
    import apprise

REMEMBERED = 1000  # deliveries whose failed URLs are kept for their retry


def scheme_of(url: str) -> str:
    """The part of an Apprise URL that is safe to show (config checks ``SCHEME://``)."""
    return url.split("://", 1)[0]


class AppriseSender:
    def __init__(self) -> None:
        self._left: OrderedDict[tuple[str, tuple[str, ...]], tuple[int, ...]] = OrderedDict()

    async def send(self, target: NotifyConfig, alert: Mapping[str, Any]) -> None:
        key = (str(alert["id"]), target.urls)
        indexes = self._left.get(key, tuple(range(len(target.urls))))
        services = await asyncio.to_thread(_load, [target.urls[i] for i in indexes])
        limit = target.timeout.total_seconds() or None
        title, body, kind = wording.subject(alert), wording.text(alert), wording.severity(alert)
        results = await asyncio.gather(
            *(_notify(service, title, body, kind, limit) for service in services)
        )
        failed = [(i, why) for i, why in zip(indexes, results, strict=True) if why is not None]
        if not failed:
            self._left.pop(key, None)
            return
        self._remember(key, tuple(i for i, _ in failed))
        said = "; ".join(f"urls[{i}] ({scheme_of(target.urls[i])}) {why}" for i, why in failed)
        sent = len(indexes) - len(failed)
        also = f" ({sent} of {len(indexes)} delivered)" if sent else ""
        # A URL Apprise cannot use will not get better by trying again.
        retryable = any(why != _UNUSABLE for _, why in failed)
        raise SendFailed(said + also, retryable)

    def _remember(self, key: tuple[str, tuple[str, ...]], indexes: tuple[int, ...]) -> None:
        self._left[key] = indexes
        self._left.move_to_end(key)
        while len(self._left) > REMEMBERED:
            self._left.popitem(last=False)


_UNUSABLE = "is not a URL Apprise can use (unknown scheme, or a required part missing)"


async def _notify(
    service: apprise.Apprise | None, title: str, body: str, kind: str, limit: float | None
) -> str | None:
    """Why one URL's send failed, or None when it was delivered."""
    if service is None:
        return _UNUSABLE
    try:
        async with asyncio.timeout(limit):
            # Plain text: a run's output is not HTML or Markdown for a mail or a chat to
            # render (Apprise would otherwise pass ``<tags>`` in it through as markup).
            result = await service.async_notify(
                body=body, title=title, notify_type=kind, body_format="text"
            )
    except TimeoutError:
        return f"gave no answer within {limit:g}s"
    except Exception as exc:  # its text may quote the URL: named, not shown
        return f"failed ({type(exc).__name__})"
    if result:
        return None
    status = getattr(getattr(result, "status", None), "name", "")
    return "timed out" if status == "TIMEOUT" else "was not accepted"


def _load(urls: Sequence[str]) -> list[apprise.Apprise | None]:
    """One Apprise object per URL (so each one's outcome is known apart), None for a
    URL Apprise cannot parse.  Blocking: the first call imports Apprise."""
    import apprise

    quiet_apprise_logs()
    loaded: list[apprise.Apprise | None] = []
    for url in urls:
        service = apprise.Apprise()
        try:
            usable = service.add(url)
        except Exception:  # its text may quote the URL: the URL counts as unusable
            usable = False
        loaded.append(service if usable else None)
    return loaded


def quiet_apprise_logs() -> None:
    """Apprise logs through stdlib logging, and its messages may name a host, a user
    or a token from a URL: none of it reaches the daemon's log.  What went wrong is
    told by cronwarden's own alert.failed event instead."""
    logger = logging.getLogger("apprise")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
