"""Requests signed in advance, for W1s: s3tier under `--auth sigv4` verifies every one.

wrk cannot sign, so each GET of the key list gets its SigV4 header set from botocore's own S3
signer before the load starts, all with one x-amz-date: s3tier accepts them for 15 minutes
either side of it (RequestTimeTooSkewed beyond), far longer than the workload runs. The Host
is signed as `127.0.0.1` and sent as such to both servers, so nginx (which verifies nothing)
gets byte-for-byte the same requests; s3tier reads a bare IP host as path-style addressing.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from unittest import mock

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from loadgen import Req

ACCESS_KEY = "AKIDBENCHW1S00000001"
SECRET_KEY = "bench-w1s-secret-0000000000000000000000001"
REGION = "us-east-1"  # s3tier's default --region, which clients must sign for
HOST = "127.0.0.1"


def keyring_file(folder: Path) -> Path:
    """A --credentials-file accepting the bench key, unrestricted."""
    path = folder / "w1s-keys.json"
    path.write_text(json.dumps([{"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}]))
    return path


def signed_gets(paths: Sequence[str], when: datetime.datetime) -> list[Req]:
    """One header-signed GET per path, as boto3 would send it (its SDK headers included, so the
    canonical request has a client's usual five signed headers), all signed as of `when`."""
    signer = S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION)
    out = []
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        for path in paths:
            sdk = {"amz-sdk-invocation-id": str(uuid.uuid4()), "amz-sdk-request": "attempt=1"}
            request = AWSRequest(method="GET", url=f"http://{HOST}{path}", headers=sdk)
            signer.add_auth(request)
            headers = [("Host", HOST), *((k, str(v)) for k, v in request.headers.items())]
            out.append(Req(path, headers=tuple(headers)))
    return out
