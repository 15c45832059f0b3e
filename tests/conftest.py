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
    return generate_demo_data(tmp_path_factory.mktemp("warehouse"), events=SMALL_EVENTS, seed=7)


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
    profiles.write_text(text.replace("events_path: data/warehouse/events", f"events_path: {events_dir}"))
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
