"""Specification of proxy.checksums: S3's flexible checksums and the trailer check.

Check values are the CRC catalogue's (the CRC of the ASCII bytes "123456789") and AWS's own
CRC-32C of its chunked-upload example.
"""

from __future__ import annotations

import base64
import hashlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy import checksums
from proxy.checksums import ALGORITHMS, Checksummer, verify_trailer_checksum
from proxy.errors import BadDigest, InvalidDigest, InvalidRequest

CHECK = b"123456789"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        pytest.param("crc32", bytes.fromhex("CBF43926"), id="crc32 is CRC-32/ISO-HDLC"),
        pytest.param("crc32c", bytes.fromhex("E3069283"), id="crc32c is CRC-32/ISCSI"),
        pytest.param("crc64nvme", bytes.fromhex("AE8B14860A799888"), id="crc64nvme is CRC-64/NVME"),
        pytest.param("sha1", hashlib.sha1(CHECK).digest(), id="sha1 is hashlib's"),
        pytest.param("sha256", hashlib.sha256(CHECK).digest(), id="sha256 is hashlib's"),
    ],
)
def test_each_algorithm_gives_its_published_check_value(algorithm: str, expected: bytes) -> None:
    digest = Checksummer(algorithm)
    digest.update(CHECK)
    assert digest.digest() == expected
    assert digest.b64() == base64.b64encode(expected).decode()


@pytest.mark.parametrize(
    ("size", "expected"),
    [(4, "E3069283"), (8, "AE8B14860A799888")],
    ids=["crc32c", "crc64nvme"],
)
def test_the_pure_python_crcs_give_the_check_values_without_awscrt(
    size: int, expected: str
) -> None:
    # Private on purpose: with awscrt installed the public class never reaches this fallback.
    table = checksums._CRC32C_TABLE if size == 4 else checksums._CRC64NVME_TABLE
    crc = checksums._TableCrc(table, size)
    crc.update(CHECK[:4])
    crc.update(CHECK[4:])
    assert crc.digest() == bytes.fromhex(expected)


def test_crc32c_of_aws_chunked_example_is_the_published_trailer() -> None:
    digest = Checksummer("crc32c")
    digest.update(b"a" * 65536)
    digest.update(b"a" * 1024)
    assert digest.b64() == "sOO8/Q=="


def test_nothing_fed_gives_the_checksum_of_the_empty_payload() -> None:
    assert Checksummer("crc32").b64() == "AAAAAA=="
    assert Checksummer("sha256").digest() == hashlib.sha256(b"").digest()


@given(
    data=st.binary(max_size=500),
    cuts=st.lists(st.integers(0, 500), max_size=4),
    algorithm=st.sampled_from(sorted(ALGORITHMS)),
)
def test_feeding_in_pieces_gives_the_same_checksum_as_at_once(
    data: bytes, cuts: list[int], algorithm: str
) -> None:
    whole, pieces = Checksummer(algorithm), Checksummer(algorithm)
    whole.update(data)
    bounds = [0, *sorted(cuts), len(data)]
    for start, end in itertools.pairwise(bounds):
        pieces.update(data[start:end])
    assert pieces.digest() == whole.digest()


def test_the_header_name_chooses_the_algorithm_in_any_case() -> None:
    digest = Checksummer.for_header("X-Amz-Checksum-CRC64NVME")
    assert digest.algorithm == "crc64nvme"
    assert digest.header_name == "x-amz-checksum-crc64nvme"


@pytest.mark.parametrize("name", ["content-md5", "x-amz-checksum-md5", "x-amz-checksum-"])
def test_an_unknown_checksum_header_is_an_invalid_request(name: str) -> None:
    with pytest.raises(InvalidRequest):
        Checksummer.for_header(name)


def crc32_of_check() -> Checksummer:
    digest = Checksummer("crc32")
    digest.update(CHECK)
    return digest


def test_a_matching_trailer_checksum_passes() -> None:
    verify_trailer_checksum("X-Amz-Checksum-Crc32", " y/Q5Jg== ", crc32_of_check())


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("x-amz-checksum-crc32", "y/Q5Jw==", BadDigest),
        ("x-amz-checksum-crc32", "AAAAAA==", BadDigest),
        ("x-amz-checksum-crc32", "not base64!", InvalidDigest),
        ("x-amz-checksum-crc32", "y/Q5", InvalidDigest),
        ("x-amz-checksum-crc32", "", InvalidDigest),
        ("x-amz-checksum-crc32c", "y/Q5Jg==", InvalidRequest),
    ],
    ids=[
        "one bit off is a bad digest",
        "another value is a bad digest",
        "a value that is not base64 is an invalid digest",
        "a value of the wrong length is an invalid digest",
        "an empty value is an invalid digest",
        "a trailer of another algorithm cannot be checked",
    ],
)
def test_a_wrong_trailer_checksum_is_refused(name: str, value: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify_trailer_checksum(name, value, crc32_of_check())
