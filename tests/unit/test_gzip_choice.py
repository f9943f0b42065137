"""Which requests get gzip (cronwarden/api/compression.py): Accept-Encoding as RFC 9110
section 12.5.3 reads it, q-values and the wildcard included."""

from __future__ import annotations

import pytest

from cronwarden.api.compression import accepts_gzip


@pytest.mark.parametrize(
    ("header", "taken"),
    [
        ("gzip, deflate, br, zstd", True),  # Chromium
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate;q=1, gzip;q=0.5", True),
        ("*", True),
        ("", False),
        ("identity", False),
        ("deflate, br", False),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("*, gzip;q=0", False),  # a named refusal wins over the wildcard
        ("*;q=0", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_gzip_is_taken_when_the_header_says_so(header: str, taken: bool) -> None:
    assert accepts_gzip(header) is taken
