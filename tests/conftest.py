"""Shared fixtures: a small generated warehouse and copies of the demo project built on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from northstar_pipeline import api
from northstar_pipeline.demo.demo_data import generate_demo_data

REPO = Path(__file__).resolve().parent.parent
PROJECT_PARTS = ("profiles.yml", "dimensions.yml", "northstar.yml", "models", "metrics", "seeds", "macros",
                 "data_tests")
SMALL_EVENTS = 60_000


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory):
    """One demo warehouse for the whole session (about a year of events)."""
    summary = generate_demo_data(tmp_path_factory.mktemp("warehouse"), events=SMALL_EVENTS, seed=7)
    _SESSION_PAYMENTS[:] = [summary.payments_dir]
    return summary


# The session warehouse's payments: a test that builds a lake of its own from the events reads these.
_SESSION_PAYMENTS: list[Path] = []


def copy_lake(warehouse, dest: Path) -> Path:
    """A writable copy of the session warehouse (events/ and payments/) at dest, for tests that append days."""
    shutil.copytree(warehouse.events_dir, dest / "events")
    shutil.copytree(warehouse.payments_dir, dest / "payments")
    return dest


def copy_demo_project(dest: Path, events_dir: Path) -> Path:
    """Copy the repo's demo project and point its events_path var at events_dir."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in PROJECT_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part)
        elif source.is_file():
            shutil.copy(source, dest / part)
    profiles = dest / "profiles.yml"
    text = profiles.read_text()
    assert "events_path: data/warehouse/events" in text
    # payments_path too: a test that points events_path at a lake of its own keeps the warehouse's payments.
    payments = events_dir.parent / "payments"
    if not payments.is_dir() and _SESSION_PAYMENTS:
        payments = _SESSION_PAYMENTS[0]
    profiles.write_text(text.replace("events_path: data/warehouse/events",
                                     f"events_path: {events_dir}\n  payments_path: {payments}"))
    return dest


def events_glob(warehouse) -> str:
    return f"{warehouse.events_dir}/**/*.parquet"


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory: pytest.TempPathFactory, warehouse):
    """The demo project built once on the session warehouse: (project, run result)."""
    root = copy_demo_project(tmp_path_factory.mktemp("demo") / "project", warehouse.events_dir)
    project = api.load(root)
    return project, api.build(project)


@pytest.fixture
def demo_project(tmp_path: Path, built_demo) -> Path:
    """A fresh copy of the built demo project (target/ included) that a test may break."""
    project, _ = built_demo
    dest = tmp_path / "project"
    shutil.copytree(project.root, dest)
    return dest


# -- Spark (tests/test_spark.py) -----------------------------------------------------------------------
SPARK_CONF = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
              "spark.sql.shuffle.partitions": "2", "spark.sql.session.timeZone": "UTC",
              "spark.sql.ansi.enabled": "true", "spark.driver.memory": "1g"}


@pytest.fixture(scope="session")
def spark_session():
    """One local[2] SparkSession for the whole test session; builds reuse it (the engine's getOrCreate).

    Skipped where pyspark or Java is missing, but a failure when CI=true: CI must run the Spark tests.
    """
    import importlib.util
    import os

    missing = [what for what, ok in (("pyspark", importlib.util.find_spec("pyspark") is not None),
                                     ("java", bool(shutil.which("java") or os.environ.get("JAVA_HOME"))))
               if not ok]
    if missing:
        message = f"Spark tests need {' and '.join(missing)} (pip install -e '.[spark]'; Java 17+)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("northstar-tests")
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    yield spark
    spark.stop()


def add_spark_target(project: Path, name: str = "spark") -> None:
    """Add a `type: spark` output (local[2], the test session's settings) to a project's profiles.yml."""
    profiles = project / "profiles.yml"
    text = profiles.read_text()
    assert "\noutputs:\n" in text
    output = (f"\noutputs:\n  {name}:\n    type: spark\n    master: local[2]\n    warehouse: target/spark-warehouse\n"
              "    conf:\n      spark.sql.shuffle.partitions: 2\n")
    profiles.write_text(text.replace("\noutputs:\n", output, 1))
