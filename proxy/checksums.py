"""S3's flexible checksums, computed incrementally over a payload, and the trailer check.

An upload may carry ``x-amz-checksum-<algorithm>: <base64>`` as a header or, in an aws-chunked
body, as a trailer after the data. The value is the base64 of the big-endian digest (S3 User
Guide, "Checking object integrity"):

    crc32       4 bytes    zlib.crc32 (CRC-32/ISO-HDLC)
    crc32c      4 bytes    CRC-32C (Castagnoli), check value of "123456789" 0xE3069283
    crc64nvme   8 bytes    CRC-64/NVME, check value of "123456789" 0xAE8B14860A799888
    sha1       20 bytes    hashlib
    sha256     32 bytes    hashlib

CRC-32C and CRC-64/NVME come from awscrt, through botocore's wrappers, when it is installed;
otherwise from the table-driven CRCs below, which agree with it but run at about 10 MB/s.

    verify_trailer_checksum(...) -> None      the value matches what was received
    raise BadDigest                           it does not (400)
    raise InvalidDigest                       the value is not base64 of the right length (400)
    raise InvalidRequest                      an algorithm S3 does not define (400)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import zlib
from collections.abc import Callable
from typing import Protocol

from proxy.errors import BadDigest, InvalidDigest, InvalidRequest

HEADER_PREFIX = "x-amz-checksum-"


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    """CRC-32 as S3 computes it: zlib's, continued across updates."""

    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)

    def digest(self) -> bytes:
        return self._crc.to_bytes(4, "big")


def _reflected_table(poly: int) -> tuple[int, ...]:
    """The byte table of a reflected (LSB-first) CRC with the given reversed polynomial."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


class _TableCrc:
    """A reflected CRC whose initial value and final xor are all ones.

    Both CRCs S3 needs beyond zlib's are of this shape (RevEng catalogue: CRC-32/ISCSI has
    refin=refout=true, init=xorout=0xFFFFFFFF; CRC-64/NVME the same with 64-bit masks).
    """

    def __init__(self, table: tuple[int, ...], size: int) -> None:
        self._table = table
        self._size = size
        self._mask = (1 << (8 * size)) - 1
        self._crc = self._mask

    def update(self, data: bytes) -> None:
        crc, table = self._crc, self._table
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        self._crc = crc

    def digest(self) -> bytes:
        return (self._crc ^ self._mask).to_bytes(self._size, "big")


# Reversed forms of 0x1EDC6F41 (Castagnoli) and 0xAD93D23594C93659 (NVM Express 2.0 §5.2.1.3.3).
_CRC32C_TABLE = _reflected_table(0x82F63B78)
_CRC64NVME_TABLE = _reflected_table(0x9A6C9329AC4BC9B5)


def _crc_factories() -> tuple[Callable[[], _Digest], Callable[[], _Digest]]:
    # botocore's Crt* classes import fine without awscrt and fail only on update(), so ask for
    # awscrt itself.
    if importlib.util.find_spec("awscrt") is not None:
        from botocore.httpchecksum import CrtCrc32cChecksum, CrtCrc64NvmeChecksum

        return CrtCrc32cChecksum, CrtCrc64NvmeChecksum
    return (lambda: _TableCrc(_CRC32C_TABLE, 4)), (lambda: _TableCrc(_CRC64NVME_TABLE, 8))


_crc32c, _crc64nvme = _crc_factories()
_FACTORIES: dict[str, Callable[[], _Digest]] = {
    "crc32": _Crc32,
    "crc32c": _crc32c,
    "crc64nvme": _crc64nvme,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
}
ALGORITHMS = frozenset(_FACTORIES)


class Checksummer:
    """An incremental checksum of one S3 algorithm over a payload, fed as it is decoded."""

    __slots__ = ("_digest", "algorithm")

    def __init__(self, algorithm: str) -> None:
        factory = _FACTORIES.get(algorithm.lower())
        if factory is None:
            raise InvalidRequest(f"Checksum algorithm {algorithm!r} is not supported.")
        self.algorithm = algorithm.lower()
        self._digest = factory()

    @classmethod
    def for_header(cls, name: str) -> Checksummer:
        """The checksum a header or trailer such as ``x-amz-checksum-crc32`` names."""
        lowered = name.lower()
        if not lowered.startswith(HEADER_PREFIX):
            raise InvalidRequest(f"{name!r} is not a checksum header.")
        return cls(lowered.removeprefix(HEADER_PREFIX))

    @property
    def header_name(self) -> str:
        return HEADER_PREFIX + self.algorithm

    def update(self, data: bytes) -> None:
        self._digest.update(data)

    def digest(self) -> bytes:
        return bytes(self._digest.digest())

    def b64(self) -> str:
        """The value S3 puts in ``x-amz-checksum-<algorithm>``."""
        return base64.b64encode(self.digest()).decode("ascii")


def verify_trailer_checksum(name: str, value: str, digest: Checksummer) -> None:
    """Check a checksum header or trailer ``name: value`` against the payload ``digest`` saw."""
    if name.lower() != digest.header_name:
        raise InvalidRequest(f"{name} cannot be checked with a {digest.algorithm} checksum.")
    try:
        claimed = base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise InvalidDigest() from None
    actual = digest.digest()
    if len(claimed) != len(actual):
        raise InvalidDigest()
    if claimed != actual:
        raise BadDigest()
