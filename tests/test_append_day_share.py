"""`demo-data --append-day --day-share`: the same night's data on a bigger history replays only a share of the
users; the replayed events are exactly the whole day's events of those users (checked with SQL written here)."""

from __future__ import annotations

import datetime
from pathlib import Path

import duckdb
import pytest
from conftest import copy_lake

from northstar_pipeline.demo.append_day import append_day
from northstar_pipeline.errors import UsageError

# A user is kept when this hash, computed here independently of the module, falls under the share.
KEPT = "hash(user_id, 'share') % 1000 < {per_mille}"


def _appended(lake: Path, day: datetime.date, what: str, where: str = "true") -> list[tuple]:
    pattern = f"{lake}/events/*/events_append_{day}_*.parquet" if what == "events" else \
        f"{lake}/payments/payments_append_{day}.parquet"
    columns = ("user_id, event_type, occurred_at, landed_date, items, region" if what == "events"
               else "user_id, paid_at, amount")
    return duckdb.sql(f"SELECT {columns} FROM read_parquet('{pattern}', hive_partitioning = true) "
                      f"WHERE {where} ORDER BY ALL").fetchall()


def test_a_share_of_the_day_is_the_whole_day_of_that_share_of_users(tmp_path: Path, warehouse) -> None:
    whole, part = tmp_path / "whole", tmp_path / "part"
    for lake in (whole, part):
        copy_lake(warehouse, lake)
    day = warehouse.last_day + datetime.timedelta(days=1)
    full = append_day(whole, day)
    some = append_day(part, day, share=0.25)
    assert 0 < some.events < full.events
    for what in ("events", "payments"):
        everything = _appended(whole, day, what)
        kept = _appended(whole, day, what, where=KEPT.format(per_mille=250))
        got = _appended(part, day, what)
        assert got == kept and len(got) < len(everything)


def test_a_share_outside_0_1_is_refused(tmp_path: Path, warehouse) -> None:
    with pytest.raises(UsageError, match="day-share"):
        append_day(tmp_path, warehouse.last_day + datetime.timedelta(days=1), share=1.5)
