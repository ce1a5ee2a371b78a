"""SigV4 verification in isolation: microseconds per verified request, no server.

Signs a typical boto3 GET (host, x-amz-date, x-amz-content-sha256, amz-sdk-invocation-id,
amz-sdk-request, user-agent) with botocore's own S3 signer, then times, best of five rounds:

- `verify`, signing key derived afresh each time (the signing-key cache cleared per call);
- `verify`, signing key cached (what every request but the first of a day and key pays);
- `fast_verify`, the protocol-level entry point, on the same bytes as the wire carries them.

    .venv/bin/python benchmarks/verifybench.py [--rounds 5] [--number 20000]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from proxy import auth
from proxy.fastauth import fast_verify

ACCESS_KEY, SECRET_KEY = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
WHEN = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)
URL = "http://127.0.0.1:8080/bench/w1s/00042"
SDK_HEADERS = {
    "User-Agent": "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux lang/python#3.12",
    "amz-sdk-invocation-id": "8c3c6b5e-0f4a-4b7e-9a43-3c1c1b9e7f10",
    "amz-sdk-request": "attempt=1",
}


def signed_get() -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(request target, header list as the protocol sees it) of one signed GET."""
    request = AWSRequest(method="GET", url=URL, headers=dict(SDK_HEADERS))
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(request)
    headers = [(b"host", b"127.0.0.1:8080")]
    headers += [(k.lower().encode(), v.encode()) for k, v in request.headers.items()]
    return b"/bench/w1s/00042", headers


def best_us(call: Callable[[], object], rounds: int, number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=rounds)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=20_000)
    args = parser.parse_args()
    keyring = auth.Keyring([auth.Principal(ACCESS_KEY, SECRET_KEY, None)])
    target, header_list = signed_get()
    headers = {k.decode(): v.decode() for k, v in header_list}
    now = WHEN.timestamp()

    def full() -> object:
        return auth.verify("GET", target, b"", headers, keyring, now, expected_region="us-east-1")

    def cold() -> object:
        keyring.signing_keys.clear()  # every call derives its key: the cost before the cache
        return full()

    def fast() -> object:
        return fast_verify(
            b"GET", target, header_list, keyring, "us-east-1", "bench", "w1s/00042", now
        )

    assert fast() is True, "the benchmark request does not verify"
    for name, call in (("verify, key derived", cold), ("verify, key cached", full)):
        print(f"{name:24s} {best_us(call, args.rounds, args.number):6.1f} us per request")
    print(f"{'fast_verify, key cached':24s} {best_us(fast, args.rounds, args.number):6.1f} us")


if __name__ == "__main__":
    main()
