"""Fuzzing a real daemon with hypothesis: generated paths, query strings, headers and
bodies (unicode, surrogates, huge numbers, deep nesting, dates at the ends of the
calendar).  Never a 5xx, errors always problem+json, every read endpoint answers after.

Requests are well-formed HTTP: a header value with a control character, say, is refused
by aiohttp's protocol layer (a plain 400) before any cronwarden code sees it.  Over-long
URLs and headers do reach cronwarden and are refused as problem+json (414, 431)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TASKS = """
[tasks.hello]
command = "true"
params = ["who"]
schedule = "0 9 * * *"
timezone = "UTC"
"""

RUN_ID = "0192f5e4-7c1a-7b3e-9d2a-5f1e2c3d4b5a"
TEMPLATES = [
    ("GET", "/health"),
    ("GET", "/api/info"),
    ("GET", "/api/tasks"),
    ("GET", "/api/tasks/{x}"),
    ("GET", "/api/tasks/{x}/runs"),
    ("POST", "/api/tasks/{x}/runs"),
    ("POST", "/api/tasks/{x}/pause"),
    ("POST", "/api/tasks/{x}/resume"),
    ("GET", "/api/runs"),
    ("GET", "/api/runs/{x}"),
    ("POST", "/api/runs/{x}/stop"),
    ("GET", "/api/runs/{x}/log"),
    ("GET", "/api/runs/{x}/artifacts"),
    ("GET", f"/api/runs/{RUN_ID}/artifacts/{{x}}"),
    ("GET", f"/api/runs/{RUN_ID}/artifacts/sub/{{x}}"),
    ("DELETE", "/api/runs/{x}"),
    ("PUT", "/api/tasks/{x}"),
]
QUERY_KEYS = [
    "task_name", "status", "end_reason", "triggered_by", "start_date", "end_date",
    "sort_direction", "limit", "offset", "cursor", "total", "next", "after", "stream",
    "follow", "search", "zzz",
]  # fmt: skip
EDGE_VALUES = [
    "0", "-1", "9223372036854775808", "1e309", "NaN", "\u00b2", "\u0661", "", " ", "%",
    "%00",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "99999999999 days ago",
    "1 days ago", "2026-02-30", "true", "yes", "stdout", "asc", "desc,asc", "ended",
    "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwiYSJd", "../../etc/passwd", "hello",
    "a\ud800b", "\x00", "\u202e", "x" * 3000,
]  # fmt: skip

text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
segment = st.one_of(st.sampled_from(["hello", RUN_ID, "nope", "..", "%2e%2e", "x?y"]), text)
value = st.one_of(st.sampled_from(EDGE_VALUES), text, st.integers().map(str))
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
bodies = st.one_of(
    st.none(),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["params", "who", "x"]), json_value, max_size=3).map(
        lambda v: json.dumps(v).encode()
    ),
    st.just(b'{"params": {"who": "a\\ud800b"}}'),
    st.just(b"[" * 50_000 + b"]" * 50_000),
    st.binary(max_size=64),
)


def field_value(raw: str) -> str:
    """What RFC 9110 allows in a header value: visible ASCII, space and obs-text."""
    latin = raw.encode("utf-8").decode("latin-1")
    return "".join(c for c in latin if " " <= c <= "~" or c >= "\xa0")[:200].strip()


headers = st.dictionaries(
    st.sampled_from(["Idempotency-Key", "Content-Type", "Last-Event-ID", "Authorization"]),
    st.one_of(
        st.sampled_from(["application/json", "text/plain", "", "x" * 300, "Bearer x"]),
        text.map(field_value),
    ),
    max_size=3,
)


def encode(raw: str) -> str:
    """Percent-encode whatever the text holds (lone surrogates as their raw bytes)."""
    return quote(raw.encode("utf-8", "surrogatepass"), safe="")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    from conftest import Daemon  # type: ignore[import-not-found]

    d = Daemon(tmp_path_factory.mktemp("fuzz"), TASKS).start()
    yield d
    assert d.stop() == 0, d.log()


def send(daemon, method: str, path: str, body: bytes | None, hdrs: dict[str, str]):  # type: ignore[no-untyped-def]
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, val in hdrs.items():
            conn.putheader(name, val.encode("latin-1", "replace"))
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    template=st.sampled_from(TEMPLATES),
    part=segment,
    query=st.dictionaries(st.sampled_from(QUERY_KEYS), value, max_size=4),
    body=bodies,
    hdrs=headers,
)
def test_no_request_gets_a_server_error(daemon, template, part, query, body, hdrs) -> None:  # type: ignore[no-untyped-def]
    method, pattern = template
    path = pattern.replace("{x}", encode(part))
    if query:
        path += "?" + "&".join(f"{encode(k)}={encode(v)}" for k, v in query.items())
    status, content_type, payload = send(daemon, method, path, body, hdrs)
    assert status < 500 or (status == 503 and path.startswith("/health")), (status, payload[:300])
    if status >= 400:
        assert content_type.startswith("application/problem+json"), (status, content_type)
        problem = json.loads(payload)
        assert problem["status"] == status and "Traceback" not in problem["detail"]


def test_every_read_endpoint_still_answers_after_fuzzing(daemon) -> None:
    test_no_request_gets_a_server_error(daemon)  # type: ignore[call-arg]
    for path in ("/health", "/api/info", "/api/tasks", "/api/tasks/hello", "/api/runs"):
        assert daemon.get(path).status == 200, path
    cursor, pages = None, 0
    while True:  # every stored row can still be listed
        page = daemon.get("/api/runs?limit=50" + (f"&cursor={cursor}" if cursor else "")).body
        pages += 1
        for run in page["runs"]:
            assert daemon.get(f"/api/runs/{run['id']}").status == 200
        if not page["has_next"]:
            break
        cursor = page["next_cursor"]
    assert pages >= 1


READ_PARAMS = {
    "/api/runs": QUERY_KEYS,
    "/api/tasks/hello/runs": QUERY_KEYS,
    "/api/tasks/hello": ["next"],
    "/api/runs/" + RUN_ID + "/log": ["after", "limit", "stream", "follow"],
}


@pytest.mark.parametrize("endpoint", sorted(READ_PARAMS))
def test_every_edge_value_in_every_query_parameter(daemon, endpoint: str) -> None:
    """Systematic where the random fuzzer is diffuse: each edge value in each parameter."""
    for key in READ_PARAMS[endpoint]:
        for raw in EDGE_VALUES:
            path = f"{endpoint}?{encode(key)}={encode(raw)}"
            status, content_type, payload = send(daemon, "GET", path, None, {})
            assert status < 500, (path, status, payload[:300])
            if status >= 400:
                assert content_type.startswith("application/problem+json"), (path, status)
