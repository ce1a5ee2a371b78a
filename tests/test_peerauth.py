"""Peer requests are signed with the fleet's shared secret (tiering/peerauth.py): the right
request, recently, with the right secret verifies; anything else does not."""

from __future__ import annotations

import pytest

from tiering.peerauth import SKEW_S, sign, verify

SECRET = b"fleet-secret"
PATH = "/_s3tier/peer/block/b/k?etag=%22e%22&index=0"
NOW = 1_800_000_000.0


def test_a_signed_request_verifies() -> None:
    assert verify(SECRET, "GET", PATH, sign(SECRET, "GET", PATH, NOW), NOW + 1)


@pytest.mark.parametrize(
    ("secret", "method", "path", "delay_s"),
    [
        (b"another-secret", "GET", PATH, 0),  # not a member
        (SECRET, "HEAD", PATH, 0),  # another method
        (SECRET, "GET", PATH.replace("index=0", "index=1"), 0),  # another block
        (SECRET, "GET", PATH, SKEW_S + 1),  # replayed too late
        (SECRET, "GET", PATH, -(SKEW_S + 1)),  # from too far ahead
    ],
)
def test_anything_but_that_request_recently_with_the_secret_is_refused(
    secret: bytes, method: str, path: str, delay_s: float
) -> None:
    value = sign(SECRET, "GET", PATH, NOW)
    assert not verify(secret, method, path, value, NOW + delay_s)


@pytest.mark.parametrize("value", [None, "", "t=,sig=", "sig=00", "t=abc,sig=00", "garbage"])
def test_a_missing_or_malformed_header_is_refused(value: str | None) -> None:
    assert not verify(SECRET, "GET", PATH, value, NOW)


def test_without_a_secret_nothing_verifies() -> None:
    assert not verify(b"", "GET", PATH, sign(b"", "GET", PATH, NOW), NOW)
