"""kit: explain image classifiers by removing features, with generative inpainters.

Reproduces and extends Agarwal & Nguyen, "Explaining image classifiers by removing input features
using generative models" (ACCV 2020) on an embedded, procedurally generated world with exact ground
truth. Importing kit has no side effects and imports nothing heavy beyond torch, except one on
request: with ``KIT_PASS_LOG`` (``KIT_PROFILE``) set, the process counts its passes (profiles
itself) and writes the result there at exit (:mod:`kit.passes`, how
``benchmarks/make_run_bound.py`` counts and profiles a notebook).
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

if _os.environ.get("KIT_PASS_LOG"):
    from kit import passes as _passes

    _passes.start_logging(_os.environ["KIT_PASS_LOG"])
if _os.environ.get("KIT_PROFILE"):
    from kit import passes as _passes

    _passes.start_profiling(_os.environ["KIT_PROFILE"])


def setup(seed: int = 0, threads: int | None = None) -> None:
    """Seed every global generator and make torch deterministic (for notebooks).

    Kit's own functions never rely on global generators (they take ``seed``); this call makes
    user code in notebooks reproducible too.

    Args:
        seed: seed for ``random``, ``numpy`` and ``torch``.
        threads: optional torch intra-op thread count.
    """
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (user code in notebooks reads the legacy global)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads is not None:
        torch.set_num_threads(threads)
