"""Smoke: the harness starts real processes and a boto3 read through s3tier works."""

from typing import Any


def test_second_get_is_a_ram_hit(s3: Any, direct: Any, bucket: str) -> None:
    direct.put_object(Bucket=bucket, Key="k", Body=b"hello")
    first = s3.get_object(Bucket=bucket, Key="k")
    second = s3.get_object(Bucket=bucket, Key="k")
    assert first["Body"].read() == second["Body"].read() == b"hello"
    assert first["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"] == "MISS"
    assert second["ResponseMetadata"]["HTTPHeaders"]["x-cache-status"] == "HIT-RAM"
