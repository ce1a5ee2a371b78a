"""Upstream signing: botocore's SigV4 with S3's rule that the path is signed exactly as sent."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.harness import sign_as_of
from tiering.signing import EMPTY_SHA256, UNSIGNED_PAYLOAD, Signer

CREDS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token-1")
FIXED = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    sign_as_of(monkeypatch, FIXED)


def botocore_s3_signature(url: str, headers: dict[str, str]) -> dict[str, Any]:
    request = AWSRequest(method="GET", url=url, headers=dict(headers))
    S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def test_signature_equals_botocores_own_s3_signer_for_a_plain_key() -> None:
    url = "http://127.0.0.1:9000/bucket/dir/file%20name.txt?partNumber=1&versionId=v1"
    ours = Signer(CREDS, "us-east-1").sign("GET", url, {"range": "bytes=0-9"}, EMPTY_SHA256)
    theirs = botocore_s3_signature(url, {"range": "bytes=0-9"})
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours["X-Amz-Security-Token"] == "token-1"


def test_payload_hash_header_is_sent_and_signed() -> None:
    signed = Signer(CREDS, "us-east-1").sign(
        "PUT", "http://h/b/k", {"content-length": "3"}, UNSIGNED_PAYLOAD
    )
    assert signed["X-Amz-Content-SHA256"] == UNSIGNED_PAYLOAD
    assert "x-amz-content-sha256" in signed["Authorization"].split("SignedHeaders=")[1]


@pytest.mark.parametrize("path", ["/b/a/../x", "/b/./x", "/b/a//b"])
def test_dot_segments_and_double_slashes_are_signed_as_sent(path: str) -> None:
    signed = Signer(CREDS, "us-east-1").sign("GET", f"http://h{path}", {}, EMPTY_SHA256)
    # botocore's S3 signer keeps the path too; the generic SigV4 signer would sign /b/x.
    assert signed["Authorization"] == botocore_s3_signature(f"http://h{path}", {})["Authorization"]


def test_without_credentials_requests_go_unsigned() -> None:
    signed = Signer(None, "us-east-1").sign("GET", "http://h/b/k", {}, EMPTY_SHA256)
    assert "Authorization" not in signed
