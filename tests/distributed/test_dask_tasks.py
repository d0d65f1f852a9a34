"""kit.distributed: get_client's forms and errors; map_tasks in order, shared objects sent once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

distributed = pytest.importorskip("distributed")
import cloudpickle  # noqa: E402

from kit.distributed import get_client, map_tasks  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
WAIT = 120


def _weighted(task, *, w):
    return float((w * task).sum())


def _who(task, *, w):
    """(worker pid, id of the shared object there, its value): one object per worker process."""
    return os.getpid(), id(w), float(w.sum()) + task


def _fails(task):
    raise RuntimeError(f"task {task} failed on purpose")


def test_serial_when_nothing_asks_for_a_cluster(monkeypatch):
    monkeypatch.delenv("KIT_SCHEDULER", raising=False)
    assert get_client() is None
    monkeypatch.setenv("KIT_SCHEDULER", "  ")
    assert get_client() is None
    assert get_client("") is None


def test_unreachable_scheduler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("KIT_SCHEDULER", "tcp://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(ValueError, match=r"tcp://127\.0\.0\.1:9.*within 1 s.*dask scheduler"
                                         r".*scheduler=None"):
        get_client(timeout=1)


@pytest.mark.parametrize("bad", ["localhost:8786", 8786])
def test_bad_scheduler_forms(bad):
    with pytest.raises(ValueError, match="scheduler: expected None, 'local'"):
        get_client(bad)


def test_bad_client_and_retries():
    with pytest.raises(ValueError, match="client: expected None or a distributed.Client"):
        map_tasks(_weighted, [1], client="tcp://127.0.0.1:8786", shared={"w": torch.ones(2)})
    with pytest.raises(ValueError, match="retries: expected an integer >= 0"):
        map_tasks(_weighted, [1], retries=-1, shared={"w": torch.ones(2)})


def test_kit_runs_serially_without_dask(tmp_path):
    """With dask unimportable, kit imports and compute_maps runs in-process."""
    code = (
        "import sys; sys.modules['distributed'] = None; sys.modules['dask'] = None\n"
        "import torch; from torch import nn\n"
        "from kit import mapcache, distributed\n"
        "from kit.models import Classifier\n"
        "net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())\n"
        "clf = Classifier(net, ('a', 'b'), (0.5,) * 3, (0.25,) * 3, name='toy')\n"
        "m = mapcache.compute_maps(['Saliency'], clf, torch.rand(2, 3, 8, 8), 0, cache=False)\n"
        "assert distributed.get_client() is None and m['Saliency'].shape == (2, 1, 8, 8)\n"
        "try:\n    distributed.get_client('local')\nexcept ImportError as e:\n"
        "    assert 'dask[distributed]' in str(e); print('ok')\n")
    env = {**os.environ, "KIT_CACHE": str(tmp_path)}
    env.pop("KIT_SCHEDULER", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=WAIT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_a_client_passes_through(client):
    assert get_client(client) is client


def _torch_threads():
    import torch

    return torch.get_num_threads()


def test_local_workers_share_the_cores_out_in_torch_threads(client):
    # torch threads = cores / workers: together the workers use every core once, never
    # oversubscribing them (2 workers on 2 cores: 1 each) nor leaving some idle (1 worker: all)
    from kit.distributed import local_threads

    n_workers = len(client.scheduler_info()["workers"])
    assert set(client.run(_torch_threads).values()) == {local_threads(n_workers)}
    assert (local_threads(2, 2), local_threads(1, 16), local_threads(3, 16),
            local_threads(8, 2)) == (1, 16, 5, 1)
    with get_client("local", n_workers=1) as one:
        one.wait_for_workers(1, timeout=WAIT)
        assert list(one.run(_torch_threads).values()) == [os.cpu_count()]


def test_cluster_results_equal_serial_in_task_order(client):
    w = torch.arange(4.0)
    tasks = [torch.full((4,), float(i)) for i in range(7)]
    serial = map_tasks(_weighted, tasks, shared={"w": w})
    assert serial == [6.0 * i for i in range(7)]
    assert map_tasks(_weighted, tasks, client=client, shared={"w": w}, timeout=WAIT) == serial
    assert map_tasks(_weighted, [], client=client, shared={"w": w}) == []


def test_shared_objects_reach_each_worker_once(client):
    """Every task on one worker process sees the same object: sent once, not with each task."""
    w = torch.ones(100_000)
    got = map_tasks(_who, range(12), client=client, shared={"w": w}, timeout=WAIT)
    assert [v for _, _, v in got] == [100_000.0 + i for i in range(12)]
    ids: dict[int, set] = {}
    for pid, ident, _ in got:
        ids.setdefault(pid, set()).add(ident)
    assert all(len(s) == 1 for s in ids.values()), ids


def test_a_failing_task_raises_its_error(client):
    with pytest.raises(RuntimeError, match="task 2 failed on purpose"):
        map_tasks(_fails, [2], client=client, retries=0, timeout=WAIT)
