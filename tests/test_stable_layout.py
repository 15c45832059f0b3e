"""The stable-path layout: each new file keeps the previous one's column chunks at their offsets.

A reader that read the previous footer and opens the path again (pyarrow.parquet.read_table does)
must read the previous version whole; readers that open it once read the new one.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import duckdb
import pandas as pd  # the [test] extra: a missing one is an error, not a skip
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from northstar_pipeline.build.stable_layout import lay_out, shift_offsets, split_file


def _table(k: int, n: int) -> pa.Table:
    rng = random.Random(k)
    return pa.table({
        "metric": [f"m{i % 7}" for i in range(n)],
        "period_start": pa.array([i // 7 for i in range(n)], pa.int32()).cast(pa.date32()),
        "value": [rng.random() * k for _ in range(n)],
        "is_complete": [i % 3 != 0 for i in range(n)],
        "note": [None if i % 5 else f"n{i}" for i in range(n)],
    })


def _bytes(table: pa.Table, **options) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", **options)
    return buffer.getvalue()


@pytest.mark.parametrize("options", [{}, {"write_page_index": True}, {"row_group_size": 300}])
def test_a_sequence_of_publishes(tmp_path: Path, options: dict) -> None:
    path = tmp_path / "scorecard.parquet"
    previous, previous_table, n = None, None, 900
    for k in range(16):
        n += random.Random(k).randint(-20, 40)  # a scorecard grows slowly, sometimes shrinks
        table = _table(k, n)
        new = _bytes(table, **options)
        laid = lay_out(previous, new)
        path.write_bytes(laid)
        # Readers that open once read the new version.
        assert pq.read_table(path).equals(table)
        assert pl.read_parquet(path).height == n and len(pd.read_parquet(path)) == n
        assert duckdb.sql(f"SELECT count(*), sum(value) FROM read_parquet('{path}')").fetchall()[0] == \
            (n, pytest.approx(sum(table.column("value").to_pylist()), rel=1e-12))
        if previous is not None:  # the reader who read the previous footer, then opened the new file
            held = pq.read_metadata(io.BytesIO(previous))
            assert pq.ParquetFile(path, metadata=held).read().equals(previous_table)
        assert len(laid) <= 4 * len(new)  # two versions at most, so the file stays small
        previous, previous_table = laid, table


def test_shifting_by_zero_is_the_identity_and_a_shift_moves_every_offset() -> None:
    new = _bytes(_table(3, 500), write_page_index=True)
    footer = split_file(new).footer
    assert shift_offsets(footer, 0) == footer
    moved = shift_offsets(footer, 1000)
    blob = b"PAR1" + b"\0" * 1000 + split_file(new).body + moved + len(moved).to_bytes(4, "little") + b"PAR1"
    meta = pq.read_metadata(io.BytesIO(blob))
    original = pq.read_metadata(io.BytesIO(new))
    for rg in range(meta.num_row_groups):
        for col in range(meta.num_columns):
            assert meta.row_group(rg).column(col).data_page_offset == \
                original.row_group(rg).column(col).data_page_offset + 1000
    assert pq.read_table(io.BytesIO(blob)).equals(_table(3, 500))


def test_bytes_that_are_not_ours_are_replaced_whole() -> None:
    new = _bytes(_table(1, 100))
    assert lay_out(b"not parquet at all", new) == new
    assert lay_out(None, new) == new
