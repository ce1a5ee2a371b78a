"""Workload (b): ranged reads over large Parquet files, in the order a Parquet reader issues them.

Per file opened: a suffix range for the footer (`bytes=-N`, N = --footer-bytes, 64 KiB as
pyarrow and parquet-rs read it); a second suffix range if the metadata is longer than that; then
one range per column chunk of a random projection of --read-columns columns, over every row
group. Files are drawn uniformly. The column-chunk layout comes from parsing the real footer
(pyarrow), once per file and ETag, so the load generator spends its time on requests.

Seed the files first (`python loadtests/seed.py parquet_ranges --endpoint ...`); they are real
Parquet files, so this also works against any bucket of Parquet files given --prefix and
--objects (keys `<prefix>000000`, ...).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from locust import events, task

import cachestats  # noqa: F401  (plugin: X-Cache-Status per request, the hit ratio)
import final_csv  # noqa: F401  (plugin: CSVs with the final figures)
from common import Option, add_options
from parquet_layout import TRAILER_BYTES, Layout, metadata_length
from s3user import S3User

FOOTER_BYTES = Option(
    "--footer-bytes", "LOADTEST_FOOTER_BYTES", 64 * 1024, "suffix read first for the footer"
)
READ_COLUMNS = Option(
    "--read-columns", "LOADTEST_READ_COLUMNS", 4, "columns projected per file opened"
)
# RFC 9110 §14.4: Content-Range: bytes first-last/complete-length
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
PARTIAL = (206,)


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    add_options(parser, "parquet_ranges", FOOTER_BYTES, READ_COLUMNS)


class ParquetReader(S3User):
    workload = "parquet_ranges"
    # Parsed footers of this process, by (key, ETag): parsing is not what is being measured.
    layouts: ClassVar[dict[tuple[str, str], Layout]] = {}

    @task
    def scan_file(self) -> None:
        key = self.rng.choice(self.specs).key
        layout = self.open(key)
        if layout is None:
            return
        count = min(int(self.environment.parsed_options.read_columns), layout.columns)
        columns = set(self.rng.sample(range(layout.columns), count))
        for chunk in layout.projection(columns):
            self.send(
                "GET",
                key,
                "column chunk",
                headers={"Range": chunk.range_header},
                expect=PARTIAL,
                length=chunk.length,
            )

    def open(self, key: str) -> Layout | None:
        """Read the footer as a reader does; None (a failure already counted) if it cannot."""
        footer_bytes = int(self.environment.parsed_options.footer_bytes)
        tail = self.send(
            "GET", key, "footer", headers={"Range": f"bytes=-{footer_bytes}"}, expect=PARTIAL
        )
        if tail.status_code != 206:  # a failure, counted as such (headers may be missing)
            return None
        found = CONTENT_RANGE.fullmatch(tail.headers.get("Content-Range") or "")
        if found is None:
            return None
        size, etag, body = int(found[3]), str(tail.headers.get("ETag", "")), tail.content
        needed = metadata_length(body) + TRAILER_BYTES
        if needed > len(body):  # metadata longer than the first read: fetch all of it
            rest = self.send(
                "GET",
                key,
                "footer rest",
                headers={"Range": f"bytes=-{needed}"},
                expect=PARTIAL,
                length=needed,
            )
            if rest.status_code != 206:
                return None
            body = rest.content
        if (key, etag) not in self.layouts:
            self.layouts[(key, etag)] = Layout.from_tail(size, body)
        return self.layouts[(key, etag)]
