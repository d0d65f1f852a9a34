#!/usr/bin/env python3
"""Normalise committed notebooks: renumber execution counts, drop volatile metadata, keep outputs.

The committed notebooks are nbval's references, so their outputs stay; so do cell ``tags``
(papermill's ``parameters``, jupyter-book's visibility tags). What goes: papermill's per-cell and
per-notebook records, nbclient/JupyterLab ``execution`` timings, ``ExecuteTime``, the widget state,
and Colab's keys (style.md §9).

Execution counts are renumbered 1..N over the executed code cells (those with a count or outputs)
in order, rather than nulled as style.md §9 says: nbval fails every cell whose reference has outputs
but no execution count ("Unrun reference cell has outputs"), so nulled counts would break
``make test``. Renumbering removes the same noise (counts from interactive re-runs) and is what a
papermill run produces; cells never run (no count, no outputs) stay unnumbered.

Usage::

    python tools/clean_notebooks.py                 # clean notebooks/*.ipynb in place
    python tools/clean_notebooks.py a.ipynb dir/    # files or folders
    python tools/clean_notebooks.py --check         # exit 1, listing the notebooks to clean
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

# Notebook-level metadata keys that change from run to run or machine to machine.
VOLATILE_NB_KEYS = ("papermill", "widgets", "colab", "accelerator", "gpuClass", "kaggle")
# Cell-level metadata keys of the same kind (Colab's are "id", "outputId", "executionInfo").
VOLATILE_CELL_KEYS = (
    "papermill",
    "execution",
    "ExecuteTime",
    "colab",
    "id",
    "outputId",
    "executionInfo",
)


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Clean ``nb`` in place and return it (outputs and cell tags are kept)."""
    for key in VOLATILE_NB_KEYS:
        nb.metadata.pop(key, None)
    count = 0
    for cell in nb.cells:
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code" and (cell.execution_count is not None or cell.outputs):
            count += 1
            cell.execution_count = count
            for output in cell.get("outputs", []):
                if "execution_count" in output:
                    output.execution_count = count
    return nb


def dumps(nb: nbformat.NotebookNode) -> str:
    """Serialise as nbformat (and Jupyter) write it, with one trailing newline."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        # keep the file's mode (mkstemp makes 0600)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def find_notebooks(paths: list[Path]) -> list[Path]:
    """Expand folders to their ``*.ipynb`` (not recursive); a missing folder counts as empty."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.glob("*.ipynb")))
        elif path.suffix == ".ipynb" and path.exists():
            found.append(path)
        elif path.exists() or path.suffix == ".ipynb":
            raise SystemExit(f"clean_notebooks: not a notebook or folder: {path}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "paths", nargs="*", type=Path, help="notebooks or folders (default: notebooks/)"
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 listing notebooks to clean"
    )
    args = parser.parse_args(argv)

    notebooks = find_notebooks(args.paths or [ROOT / "notebooks"])
    dirty = []
    for path in notebooks:
        before = path.read_text(encoding="utf-8")
        nb = nbformat.reads(before, as_version=nbformat.NO_CONVERT)
        after = dumps(clean(nb))
        if after == before:
            continue
        dirty.append(path)
        if not args.check:
            write_atomic(path, after)

    if args.check:
        if dirty:
            print("Notebooks need cleaning (run `make clean-nb`, or `make refresh-notebooks`):")
            for path in dirty:
                print(f"  {path}")
            return 1
        print(f"clean_notebooks: {len(notebooks)} notebook(s) clean")
        return 0
    print(f"clean_notebooks: cleaned {len(dirty)} of {len(notebooks)} notebook(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
