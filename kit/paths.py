"""Repository-anchored paths (never relative to the current working directory).

``KIT_CACHE`` overrides :data:`CACHE_DIR`; ``KIT_OUTPUT`` overrides the folder that receives
``figures/``, ``results/`` and ``runs/`` (tests point it at a temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""Repository root (the folder holding ``kit/``)."""

DATA_DIR = ROOT / "data"
"""Committed small assets and checkpoints."""

CACHE_DIR = Path(os.environ.get("KIT_CACHE", DATA_DIR / "cache"))
"""Trained artefacts and other regenerable files (gitignored)."""


def output_root() -> Path:
    """Folder receiving ``figures/``, ``results/`` and ``runs/`` (``KIT_OUTPUT`` or the root)."""
    return Path(os.environ.get("KIT_OUTPUT", ROOT))


def figures_dir(notebook: str) -> Path:
    """``figures/<notebook-stem>/``, created if missing."""
    path = output_root() / "figures" / Path(notebook).stem
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """``results/``, created if missing."""
    path = output_root() / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_table(df, name: str) -> Path:
    """Write a pandas DataFrame to ``results/<name>.csv`` atomically; returns the relative path."""
    from kit.cache import write_atomic_bytes

    path = results_dir() / f"{name}.csv"
    write_atomic_bytes(df.to_csv().encode("utf-8"), path)
    return path.relative_to(output_root())
