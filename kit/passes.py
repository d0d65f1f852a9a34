"""Counting the passes a computation makes: classifier forward and backward, inpainter, OpenCV.

``make run``'s cost is a sum of a few kinds of passes (methods.md; issue 14): a classifier forward
pass per scored composite, a backward pass per gradient, an inpainter pass per generative fill, an
OpenCV fill per classical inpainting. :func:`counting` counts them, in images, while a block runs;
``benchmarks/make_run_bound.py`` multiplies the counts by each kind's best measured time per image
to get the bound a run cannot beat, and compares it with the run's wall time.

Counting is off unless asked for, and then costs one dictionary update per call (never per
image). The hooks live in the model wrappers (:class:`kit.models.base.Classifier`,
:class:`kit.models.base.Inpainter`) and the OpenCV removers, which call :func:`record`.

A notebook run by papermill runs in its own kernel: with ``KIT_PASS_LOG=<path>`` in its
environment, ``import kit`` starts counting and the kernel writes the counts there (JSON) after
every cell and when it exits, so a driver can count a whole notebook without touching it.
``KIT_PROFILE=<path>`` does the same with :mod:`cProfile` (:func:`start_profiling`): the kernel's
profile, in :mod:`pstats` format, for the hotspot tables of ``benchmarks/make_run_bound.py
--profile``. ``tools/run_notebooks.py`` (``make run``) sets ``KIT_PASS_LOG`` for each notebook:
``runs/<stem>.passes.json``.

Usage::

    from kit import passes
    with passes.counting() as counts:
        explain("SP-G", clf, x, y)
    counts            # {"classifier_forward": 900, "inpainter": 900, ...}
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
from collections import Counter
from pathlib import Path

__all__ = ["KINDS", "ENV", "PROFILE_ENV", "counting", "record", "active", "start_logging",
           "start_profiling"]

KINDS = ("classifier_forward", "classifier_backward", "inpainter", "opencv")
"""What is counted, in images: classifier forward passes (logits or features), backward passes
through the classifier (one per image whose gradient reaches its input), inpainter passes (one
per filled image), OpenCV inpaintings (one per image and hole set)."""

ENV = "KIT_PASS_LOG"
"""Environment variable: a JSON path the counts of the whole process are written to at exit."""

PROFILE_ENV = "KIT_PROFILE"
"""Environment variable: a path the process's :mod:`cProfile` statistics are written to at exit."""

_stack: list[Counter] = []


def active() -> bool:
    """True while some :func:`counting` block (or a ``KIT_PASS_LOG`` process) counts."""
    return bool(_stack)


def record(kind: str, n: int) -> None:
    """Add ``n`` images of pass ``kind`` (one of :data:`KINDS`) to every open count."""
    if not _stack:
        return
    if kind not in KINDS:
        raise ValueError(f"kind: unknown pass kind {kind!r}; valid: {', '.join(KINDS)}")
    for c in _stack:
        c[kind] += int(n)


@contextlib.contextmanager
def counting():
    """Count the passes made inside the block (nested blocks each count their own).

    Yields:
        A :class:`collections.Counter` of images per kind of :data:`KINDS`, filled as the block
        runs (every kind present, 0 when none was made).
    """
    counts: Counter = Counter({k: 0 for k in KINDS})
    _stack.append(counts)
    try:
        yield counts
    finally:  # by identity: two counters with equal counts are still two blocks
        del _stack[next(i for i, c in enumerate(_stack) if c is counts)]


def start_logging(path: str | os.PathLike) -> Counter:
    """Count for the rest of the process and write the counts to ``path`` (JSON) at exit.

    Returns:
        The live counter.
    """
    counts: Counter = Counter({k: 0 for k in KINDS})
    _stack.append(counts)
    target = Path(path)

    def _write(*_) -> None:
        from kit.cache import write_atomic_bytes

        write_atomic_bytes(json.dumps(dict(counts), indent=1).encode("utf-8"), target)

    atexit.register(_write)
    _after_each_cell(_write)
    return counts


def _after_each_cell(write) -> None:
    """Also call ``write`` after every cell when this process is an IPython kernel: papermill
    shuts its kernels down without running their ``atexit`` handlers, so a kernel's counts
    (and profile) are written as it goes, the last cell's write being the final one."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.events.register("post_run_cell", write)


def start_profiling(path: str | os.PathLike) -> None:
    """Profile the rest of the process (main thread) with :mod:`cProfile`; write the statistics
    to ``path`` at exit (:mod:`pstats` format)."""
    import cProfile

    prof = cProfile.Profile()
    target = Path(path)

    def _write(*_, resume: bool = False) -> None:
        prof.disable()
        target.parent.mkdir(parents=True, exist_ok=True)
        prof.dump_stats(str(target))
        if resume:
            prof.enable()

    atexit.register(_write)
    _after_each_cell(lambda *_: _write(resume=True))
    prof.enable()
