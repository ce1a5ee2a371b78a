"""--auth sigv4 end to end: real botocore signatures accepted, every failure answered in S3's
words, grants enforced on cache hits exactly as on misses."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.auth import S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.harness import S3TierServer, sign_as_of

FULL = ("AKIDFULLACCESS000001", "full-secret-key-0000000000000000000000001")
READER = ("AKIDREADONLY00000002", "read-secret-key-00000000000000000000000002")
ADMIN_TOKEN = "admin-token-for-tests"


def client(server: S3TierServer, key: tuple[str, str], **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        # boto3 presigns with SigV2 unless asked; S3 itself now refuses SigV2.
        config=Config(retries={"max_attempts": 1}, signature_version="s3v4", **config),
    )


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, shim: Any, moto: Any) -> Any:
    workdir = tmp_path_factory.mktemp("secured")
    keys = [
        {"access_key": FULL[0], "secret_key": FULL[1]},
        {
            "access_key": READER[0],
            "secret_key": READER[1],
            "grants": [{"bucket": "*", "prefix": "public/", "access": "read"}],
        },
    ]
    credentials = workdir / "keys.json"
    credentials.write_text(json.dumps(keys))
    server = S3TierServer(
        workdir, shim.url, "--auth", "sigv4", "--credentials-file", str(credentials),
        "--admin-token", ADMIN_TOKEN,
    )  # fmt: skip
    server.start()
    yield server
    server.stop()


def error_code(response: requests.Response) -> str:
    body = response.text
    return body.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in body else ""


def test_a_correctly_signed_client_reads_and_writes(secured: S3TierServer, bucket: str) -> None:
    s3 = client(secured, FULL)
    s3.put_object(Bucket=bucket, Key="public/a", Body=b"signed")
    got = s3.get_object(Bucket=bucket, Key="public/a")
    assert got["Body"].read() == b"signed"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["public/a"]


def test_a_wrong_secret_is_signature_does_not_match(secured: S3TierServer, bucket: str) -> None:
    s3 = client(secured, (FULL[0], "not-the-secret"))
    with pytest.raises(s3.exceptions.ClientError) as refused:
        s3.get_object(Bucket=bucket, Key="public/a")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_an_unknown_key_is_invalid_access_key_id(secured: S3TierServer, bucket: str) -> None:
    s3 = client(secured, ("AKIDNOBODY0000000000", "whatever"))
    with pytest.raises(s3.exceptions.ClientError) as refused:
        s3.head_bucket(Bucket=bucket)
    assert refused.value.response["Error"]["Code"] in ("InvalidAccessKeyId", "403")


def test_an_unsigned_request_is_access_denied(secured: S3TierServer, bucket: str) -> None:
    got = requests.get(f"{secured.url}/{bucket}/public/a")
    assert (got.status_code, error_code(got)) == (403, "AccessDenied")


def test_a_tampered_signed_header_is_refused(secured: S3TierServer, bucket: str) -> None:
    client(secured, FULL).put_object(Bucket=bucket, Key="public/t", Body=b"x")
    url = f"{secured.url}/{bucket}/public/t"
    request = AWSRequest(method="GET", url=url, headers={"Range": "bytes=0-0"})
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(b"").hexdigest()
    SigV4Auth(Credentials(*FULL), "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    assert requests.get(url, headers=headers).status_code == 206
    headers["Range"] = "bytes=0-1"  # signed as bytes=0-0
    got = requests.get(url, headers=headers)
    assert (got.status_code, error_code(got)) == (403, "SignatureDoesNotMatch")


def test_clock_skew_beyond_fifteen_minutes_is_refused(
    secured: S3TierServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    skewed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=16)
    sign_as_of(monkeypatch, skewed)
    s3 = client(secured, FULL)
    with pytest.raises(s3.exceptions.ClientError) as refused:
        s3.get_object(Bucket=bucket, Key="public/a")
    assert refused.value.response["Error"]["Code"] == "RequestTimeTooSkewed"


def test_presigned_get_and_put_work_with_a_plain_http_client(
    secured: S3TierServer, bucket: str
) -> None:
    s3 = client(secured, FULL)
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "public/p"}, ExpiresIn=60
    )
    assert requests.put(put_url, data=b"presigned body").status_code == 200
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "public/p"}, ExpiresIn=60
    )
    for _ in range(2):
        got = requests.get(get_url)
        assert (got.status_code, got.content) == (200, b"presigned body")


def test_an_expired_presigned_url_is_access_denied(
    secured: S3TierServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=120)
    sign_as_of(monkeypatch, earlier)
    url = client(secured, FULL).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "public/a"}, ExpiresIn=60
    )
    got = requests.get(url)
    assert (got.status_code, error_code(got)) == (403, "AccessDenied")
    assert "expired" in got.text


@pytest.mark.parametrize("expires", [0, 604801])
def test_presigned_expiry_outside_one_second_to_a_week_is_refused(
    secured: S3TierServer, bucket: str, expires: int
) -> None:
    # botocore's own query signer: awscrt's refuses to sign an expiry of 0 at all.
    request = AWSRequest(method="GET", url=f"{secured.url}/{bucket}/public/a")
    S3SigV4QueryAuth(Credentials(*FULL), "s3", "us-east-1", expires=expires).add_auth(request)
    url = request.url
    assert f"X-Amz-Expires={expires}" in url
    got = requests.get(url)
    assert got.status_code in (400, 403)
    assert error_code(got) in ("AuthorizationQueryParametersError", "AccessDenied")


def test_a_principal_without_access_is_denied_even_when_the_object_is_in_ram(
    secured: S3TierServer, bucket: str
) -> None:
    full = client(secured, FULL)
    full.put_object(Bucket=bucket, Key="private/secret", Body=b"classified")
    first = full.get_object(Bucket=bucket, Key="private/secret")  # confirms the write
    assert first["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"] == "REVALIDATED"
    cached = full.get_object(Bucket=bucket, Key="private/secret")
    assert cached["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"] == "HIT-RAM"
    reader = client(secured, READER)
    with pytest.raises(reader.exceptions.ClientError) as refused:
        reader.get_object(Bucket=bucket, Key="private/secret")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(reader.exceptions.ClientError):
        reader.put_object(Bucket=bucket, Key="public/new", Body=b"no writes")
    full.put_object(Bucket=bucket, Key="public/ok", Body=b"readable")
    assert reader.get_object(Bucket=bucket, Key="public/ok")["Body"].read() == b"readable"


def fast_answers(server: S3TierServer) -> float:
    metrics = requests.get(
        f"{server.url}/_s3tier/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).text
    found = [
        line for line in metrics.splitlines() if line.startswith("s3tier_fast_path_answers_total ")
    ]
    return float(found[0].split()[1]) if found else 0.0


def test_signed_ram_hits_are_answered_by_the_fast_path_and_refusals_by_the_full_path(
    secured: S3TierServer, bucket: str
) -> None:
    full, reader = client(secured, FULL), client(secured, READER)
    full.put_object(Bucket=bucket, Key="public/fast", Body=b"answered at once")
    full.put_object(Bucket=bucket, Key="private/fast", Body=b"not for readers")
    full.get_object(Bucket=bucket, Key="public/fast")
    full.get_object(Bucket=bucket, Key="private/fast")
    time.sleep(1.2)  # the fast path's tally reaches the metrics once a second
    before = fast_answers(secured)
    for _ in range(3):
        got = reader.get_object(Bucket=bucket, Key="public/fast")
        assert got["Body"].read() == b"answered at once"
        assert got["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"] == "HIT-RAM"
    with pytest.raises(reader.exceptions.ClientError) as refused:
        reader.get_object(Bucket=bucket, Key="private/fast")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    unsigned = requests.get(f"{secured.url}/{bucket}/public/fast")
    assert (unsigned.status_code, error_code(unsigned)) == (403, "AccessDenied")
    time.sleep(1.2)
    assert fast_answers(secured) == before + 3


def test_without_a_credentials_file_the_proxys_own_key_is_the_client_key(
    start_s3tier: Any, bucket: str
) -> None:
    server = start_s3tier("--auth", "sigv4")
    own = client(server, ("testing", "testing"))  # the harness's upstream credentials
    own.put_object(Bucket=bucket, Key="k", Body=b"sidecar")
    assert own.get_object(Bucket=bucket, Key="k")["Body"].read() == b"sidecar"
    with pytest.raises(own.exceptions.ClientError):
        client(server, FULL).get_object(Bucket=bucket, Key="k")


# --- aws-chunked uploads with chunk signatures (Java and Go SDKs, mc) ------------------------


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signed_chunked_put(
    server: S3TierServer, bucket: str, key: str, payload: bytes, chunk: int, tamper: bool = False
) -> http.client.HTTPResponse:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload, as the spec (sigv4-streaming.html) builds it:
    botocore signs the seed; the chunk signatures are chained here with hmac."""
    url = f"{server.url}/{bucket}/{key}"
    framed_length = sum(
        len(f"{len(payload[i : i + chunk]):x};chunk-signature={'0' * 64}\r\n")
        + len(payload[i : i + chunk])
        + 2
        for i in range(0, len(payload), chunk)
    ) + len(f"0;chunk-signature={'0' * 64}\r\n\r\n")
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(payload)),
        "Content-Length": str(framed_length),
        "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    }
    request = AWSRequest(method="PUT", url=url, headers=headers)
    SigV4Auth(Credentials(*FULL), "s3", "us-east-1").add_auth(request)
    sent = dict(request.headers.items())
    amz_date = sent["X-Amz-Date"]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    previous = sent["Authorization"].rsplit("Signature=", 1)[1]
    signing_key = _hmac(
        _hmac(_hmac(_hmac(f"AWS4{FULL[1]}".encode(), amz_date[:8]), "us-east-1"), "s3"),
        "aws4_request",
    )
    body = b""
    pieces = [payload[i : i + chunk] for i in range(0, len(payload), chunk)] + [b""]
    for index, piece in enumerate(pieces):
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                hashlib.sha256(b"").hexdigest(),
                hashlib.sha256(piece).hexdigest(),
            ]
        )
        previous = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        data = bytes([piece[0] ^ 1]) + piece[1:] if tamper and index == 1 else piece
        body += f"{len(piece):x};chunk-signature={previous}\r\n".encode() + data + b"\r\n"
    assert len(body) == framed_length
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("PUT", f"/{bucket}/{key}", body=body, headers=sent)
    return conn.getresponse()


def test_a_chunk_signed_upload_stores_the_payload_not_the_framing(
    secured: S3TierServer, direct: Any, bucket: str, shim: Any
) -> None:
    payload = bytes(range(256)) * 1000
    response = signed_chunked_put(secured, bucket, "chunked", payload, chunk=65536)
    assert response.status == 200, response.read()
    assert direct.get_object(Bucket=bucket, Key="chunked")["Body"].read() == payload
    sent = shim.matching("PUT", f"/{bucket}/chunked")[-1]
    assert "aws-chunked" not in sent.headers.get("Content-Encoding", "")
    assert client(secured, FULL).get_object(Bucket=bucket, Key="chunked")["Body"].read() == payload


def test_a_tampered_chunk_is_signature_does_not_match_and_nothing_is_stored(
    secured: S3TierServer, direct: Any, bucket: str
) -> None:
    payload = b"z" * 200_000
    response = signed_chunked_put(secured, bucket, "tampered", payload, chunk=65536, tamper=True)
    assert response.status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in response.read()
    with pytest.raises(direct.exceptions.ClientError):
        direct.head_object(Bucket=bucket, Key="tampered")


def test_aws_chunked_with_a_checksum_trailer_arrives_whole_with_its_checksum(
    proxy_server: S3TierServer, direct: Any, bucket: str, shim: Any, tmp_path: Path
) -> None:
    """boto3 sends STREAMING-UNSIGNED-PAYLOAD-TRAILER over https; forced here over http."""
    import base64
    import zlib

    payload = b"trailer" * 30_000
    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
    chunks = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
    body = b"".join(b"%x\r\n" % len(c) + c + b"\r\n" for c in chunks)
    body += f"0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(payload)),
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    got = requests.put(f"{proxy_server.url}/{bucket}/trailer", data=body, headers=headers)
    assert got.status_code == 200, got.text
    stored = direct.get_object(Bucket=bucket, Key="trailer")
    assert stored["Body"].read() == payload
    sent = shim.matching("PUT", f"/{bucket}/trailer")[-1]
    sent_headers = {k.lower(): v for k, v in sent.headers.items()}
    assert sent_headers["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    bad = body.replace(crc.encode(), b"AAAAAA==")
    refused = requests.put(f"{proxy_server.url}/{bucket}/bad-trailer", data=bad, headers=headers)
    assert (refused.status_code, error_code(refused)) == (400, "BadDigest")
    with pytest.raises(direct.exceptions.ClientError):
        direct.head_object(Bucket=bucket, Key="bad-trailer")


def test_an_aws_chunked_body_that_ends_early_is_incomplete_body(
    proxy_server: S3TierServer, direct: Any, bucket: str
) -> None:
    payload = b"q" * 1000
    body = b"%x\r\n" % len(payload) + payload + b"\r\n"  # the final chunk never comes
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(payload)),
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }
    got = requests.put(f"{proxy_server.url}/{bucket}/short", data=body, headers=headers)
    assert (got.status_code, error_code(got)) == (400, "IncompleteBody")
    with pytest.raises(direct.exceptions.ClientError):
        direct.head_object(Bucket=bucket, Key="short")
