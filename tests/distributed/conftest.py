"""A LocalCluster of 2 worker processes on loopback, shared by the tests of this folder.

Started once (a few seconds), one thread per worker, no dashboard; every test bounds its waits
(``timeout=`` of :func:`kit.distributed.map_tasks`, ``wait_for_workers``), so a stuck cluster
fails instead of hanging. Test modules send their helper functions to the workers by value
(``cloudpickle.register_pickle_by_value``): the workers cannot import test modules by name.
"""

from __future__ import annotations

import pytest

pytest.importorskip("distributed")

N_WORKERS = 2
WAIT = 120
"""Seconds a test waits for its tasks or workers (2 shared cores: generous, still bounded)."""


@pytest.fixture(scope="session")
def client():
    """A ``distributed.Client`` of a 2-process LocalCluster (closed at the end of the session)."""
    from kit.distributed import get_client

    c = get_client("local", n_workers=N_WORKERS)
    c.wait_for_workers(N_WORKERS, timeout=WAIT)
    yield c
    c.close(timeout=30)
