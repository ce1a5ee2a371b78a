"""Parquet files for the ranged-read workload: written by the seeder, their layout read back
from the footer the way a reader finds it.

A Parquet file ends with its metadata, a 4-byte little-endian metadata length and the magic
`PAR1`; the metadata locates every column chunk (offset and compressed length) in every row
group. Readers therefore fetch a suffix of the file first and then only the chunks of the columns
they project. Column data here is random and uncompressed, so a file is about as large as asked.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from common import Option

MAGIC = b"PAR1"
TRAILER_BYTES = 8  # metadata length (4 bytes) + magic

OPTIONS = (
    Option("--parquet-columns", "LOADTEST_PARQUET_COLUMNS", 16, "columns per Parquet file", False),
    Option("--parquet-row-groups", "LOADTEST_PARQUET_ROW_GROUPS", 4, "row groups per file", False),
)


def parquet_bytes(rng: random.Random, size: int, columns: int, row_groups: int) -> bytes:
    """A Parquet file of about `size` bytes: `columns` int64/float64 columns of random values."""
    rows = max(row_groups, size // (columns * 8))
    kinds = ((pa.int64(), pa.float64()) * columns)[:columns]
    arrays = [
        pa.Array.from_buffers(kind, rows, [None, pa.py_buffer(rng.randbytes(rows * 8))])
        for kind in kinds
    ]
    table = pa.table(arrays, names=[f"c{index:03d}" for index in range(columns)])
    out = io.BytesIO()
    pq.write_table(
        table,
        out,
        row_group_size=-(-rows // row_groups),
        compression="NONE",
        use_dictionary=False,
        write_statistics=False,
    )
    return out.getvalue()


class TrailerError(ValueError):
    """The bytes given do not end like a Parquet file."""


def metadata_length(tail: bytes) -> int:
    """How many bytes of metadata precede the trailer at the end of `tail`."""
    if len(tail) < TRAILER_BYTES or tail[-4:] != MAGIC:
        raise TrailerError("no PAR1 magic at the end of the object")
    return int.from_bytes(tail[-TRAILER_BYTES:-4], "little")


@dataclass(frozen=True, slots=True)
class Chunk:
    """One column chunk: what a reader fetches for one column of one row group."""

    row_group: int
    column: int
    offset: int
    length: int

    @property
    def range_header(self) -> str:
        return f"bytes={self.offset}-{self.offset + self.length - 1}"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the column chunks of one file are."""

    columns: int
    chunks: tuple[Chunk, ...]

    @classmethod
    def from_tail(cls, size: int, tail: bytes) -> Layout:
        """Parse the footer from the last bytes of a `size`-byte file (metadata and trailer)."""
        metadata = pq.read_metadata(_TailFile(size, tail))
        chunks = []
        for group_index in range(metadata.num_row_groups):
            group = metadata.row_group(group_index)
            for column_index in range(group.num_columns):
                column = group.column(column_index)
                # A chunk starts at its dictionary page when it has one (parquet-format spec).
                start = column.dictionary_page_offset or column.data_page_offset
                chunks.append(Chunk(group_index, column_index, start, column.total_compressed_size))
        return cls(metadata.num_columns, tuple(chunks))

    def projection(self, columns: set[int]) -> list[Chunk]:
        """The chunks a reader of `columns` fetches, in file order."""
        return [chunk for chunk in self.chunks if chunk.column in columns]


class _TailFile(io.RawIOBase):
    """A read-only file of `size` bytes of which only the `tail` is known (zeros before it).

    pyarrow reads the footer from the end; this lets it parse the metadata without the rest.
    """

    def __init__(self, size: int, tail: bytes) -> None:
        super().__init__()
        self._size, self._tail, self._position = size, tail, 0
        self._tail_start = size - len(tail)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = base + offset
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = max(0, min(len(buffer), self._size - self._position))
        end = self._position + count
        known_from = max(self._position, self._tail_start)
        buffer[:count] = bytes(count)
        if known_from < end:
            into = known_from - self._position
            buffer[into:count] = self._tail[known_from - self._tail_start : end - self._tail_start]
        self._position = end
        return count
