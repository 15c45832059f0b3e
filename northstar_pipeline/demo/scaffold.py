"""`northstar init DIR`: a small working project with sample data, to start from."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from northstar_pipeline.errors import ProjectError

STARTER = "starter"


def init_project(directory: Path, *, events: int = 20_000, seed: int = 42) -> Path:
    root = directory.resolve()
    if root.exists() and any(root.iterdir()):
        raise ProjectError(f"{directory} exists and is not empty", path=directory,
                           hint="choose a new directory; init never overwrites files")
    starter = resources.files("northstar_pipeline.demo") / STARTER
    with resources.as_file(starter) as source:
        shutil.copytree(source, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "gitignore").rename(root / ".gitignore")
    from northstar_pipeline.demo.demo_data import generate_demo_data

    generate_demo_data(root / "data" / "warehouse", events=events, seed=seed)
    return root
