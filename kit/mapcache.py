"""Attribution maps for many methods over many images, computed once and cached on disk.

Notebooks 02–04 score the same maps with different metrics; recomputing SP-G or MP-G for every
notebook would dominate ``make run``. :func:`compute_maps` runs :func:`kit.attributors.explain` in
chunks of images and stores each (method, chunk) result under ``CACHE_DIR/maps/``. The key covers
everything that can change a map:

- the method's configuration (:data:`kit.attributors.METHODS` entry and ``overrides``) and ``seed``;
- the exact image bytes and targets of the chunk (world image *i* depends only on (split, seed, i),
  so a run on 200 images reuses the chunks of an earlier run on 100);
- the classifier's parameters and buffers, and the shipped inpainter file for generative removers;
- the source code of the attributors, removers, masks, models and networks, and the torch version,
  so editing an attributor never serves a stale map.

``batch_size`` is not part of the key: every attributor returns the same map whatever its batch
size (tested in ``tests/attributors/test_contract.py``). Files are written atomically and read with
``weights_only=True``. ``cache=False`` computes without reading or writing.

**Tasks.** The work is one task per (method, chunk) (:func:`map_task`), run by
:func:`kit.distributed.map_tasks`: in this process (``client=None``), or on a Dask cluster, where
the classifier goes to each worker once and every task reads and writes its own cache entry (the
client computes the entry's path, so workers must share the cache folder at the same path). A
chunk's seed is the call's ``seed``, whoever runs it, so cluster maps equal serial ones.

**True backgrounds.** A method whose remover needs them (``oracle``:
:attr:`kit.removers.Remover.needs_backgrounds`) gets each chunk's slice of ``backgrounds=``, and
those bytes are part of the chunk's key.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from kit import cache, checks
from kit.checks import images
from kit.maps import Maps, method_geometry

__all__ = ["compute_maps", "cache_key", "map_task", "needs_backgrounds", "CHUNK", "cache_dir",
           "SOURCES"]

CHUNK = 16
"""Images per cached chunk (a divisor of the usual image counts keeps chunks shareable)."""

SOURCES = ("attributors", "engine.py", "removers.py", "masks.py", "models", "nets.py",
           "defaults.py", "checks.py")
"""The kit sources (relative to ``kit/``) a map depends on: editing one invalidates the maps."""


def cache_dir() -> Path:
    """``<cache root>/maps`` (``KIT_CACHE`` moves it, read at call time)."""
    return cache.cache_root() / "maps"


def cache_key(name: str, config: Mapping, model_digest: str, x: torch.Tensor,
              target: torch.Tensor, seed: int, backgrounds: torch.Tensor | None = None,
              device: str | None = None) -> str | None:
    """The chunk's cache key, or None when the configuration cannot be keyed (e.g. a remover
    object instead of a name). ``backgrounds`` (the chunk's true backgrounds, for removers that
    need them) are hashed too; None leaves the key as it was without them. A ``device`` other
    than the CPU is part of the key (a GPU's float arithmetic is not the CPU's, bit for bit)."""
    if not all(isinstance(v, (str, int, float, bool, type(None), tuple, list)) for v in
               config.values()):
        return None
    parts = [name, repr(sorted(config.items())), model_digest, x, target, str(int(seed)),
             cache.code_digest(*SOURCES)]
    from kit.removers import remover_files

    # shipped checkpoints the remover's fills depend on (a retrained inpainter changes the maps)
    parts += [cache.file_digest(f) for f in remover_files(config.get("remover"))]
    if backgrounds is not None:
        parts += ["backgrounds", backgrounds]
    if device is not None and torch.device(device).type != "cpu":
        parts += ["device", torch.device(device).type]
    return cache.digest(*parts)


def needs_backgrounds(remover) -> bool:
    """True when the remover (a :data:`kit.removers.REMOVERS` name) fills from true backgrounds."""
    from kit.removers import REMOVERS

    return isinstance(remover, str) and bool(getattr(REMOVERS.get(remover), "needs_backgrounds",
                                                     False))


def _explain_takes_backgrounds() -> bool:
    import inspect

    from kit.attributors import explain

    return "backgrounds" in inspect.signature(explain).parameters


def map_task(task: Mapping, *, model) -> tuple[torch.Tensor, float]:
    """One (method, chunk) of :func:`compute_maps`: the cached map, or compute and store it.

    Args:
        task: ``name`` (method), ``x`` ``(n,3,H,W)``, ``target`` ``(n,)``, ``kw`` (the
            attributor's overrides with ``seed``), ``remover`` (the configured remover name),
            ``backgrounds`` (``(n,3,H,W)`` or None), ``path`` (the cache entry, or None) and
            ``device`` (where to compute: the model and the chunk go there; None = the CPU).
        model: the classifier (shared: scattered once per worker on a cluster).

    Returns:
        ``((n,1,h,w) map on the CPU, seconds spent computing)``; 0 s when read from the cache.
    """
    from kit import cache as store
    from kit.attributors import explain

    path = task["path"]
    if path is not None:
        sal = store.read(path)
        if isinstance(sal, torch.Tensor):
            return sal, 0.0
    xs, ts, kw, bs = task["x"], task["target"], dict(task["kw"]), task["backgrounds"]
    device = task.get("device")
    if device is not None:
        from kit.models import on_device

        model = on_device(model, device)
        xs, ts = xs.to(device), ts.to(device)
        bs = None if bs is None else bs.to(device)
    t0 = time.perf_counter()
    if bs is not None:
        if _explain_takes_backgrounds():
            kw["backgrounds"] = bs
        else:  # explain without backgrounds=: the oracle remover built here, as explain would
            from kit.removers import get_remover

            kw["remover"] = get_remover(task["remover"], model=model,
                                        size=tuple(xs.shape[-2:]), backgrounds=bs)
    sal = explain(task["name"], model, xs, ts, **kw).detach().cpu()
    spent = time.perf_counter() - t0
    if path is not None:
        store.write(sal, path)  # atomic: a rerun of this task (its worker died) rewrites it whole
    return sal, spent


def compute_maps(
    names: Sequence[str],
    model,
    x: torch.Tensor,
    target,
    *,
    overrides: Mapping[str, Mapping] | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    cache: bool = True,
    progress: bool = False,
    timings: dict | None = None,
    backgrounds: torch.Tensor | None = None,
    client=None,
    device=None,
) -> Maps:
    """Maps of every method in ``names`` for the images ``x``, with their geometry.

    Args:
        names: method names of :data:`kit.attributors.METHODS`.
        model: a :class:`kit.models.Classifier`.
        x: ``(N,3,H,W)`` images in [0,1].
        target: ``(N,)`` class indices (or an int for all images).
        overrides: per-method hyperparameter overrides, ``{name: {param: value}}``, e.g. a
            :data:`kit.attributors.PROFILES` entry; entries for methods not in ``names`` are
            ignored, unknown method names are an error.
        seed: passed to every attributor (part of the cache key).
        batch_size: passed to the attributors (does not change the maps, only speed and memory).
        cache: read and write ``<cache root>/maps``.
        progress: a tqdm bar over (method, chunk) steps.
        timings: if a dict is given, it receives ``{name: seconds spent computing}`` (0 for a
            method served entirely from the cache; on a cluster, the sum over its tasks).
        backgrounds: ``(N,3,H,W)`` true backgrounds aligned with ``x`` (``WorldBatch.backgrounds``),
            needed by methods whose remover fills from them (``oracle``); sliced per chunk.
        client: None = in this process; a ``distributed.Client`` = one task per (method,
            chunk) on the cluster (:func:`kit.distributed.map_tasks`), with the same maps.
        device: where to compute (``"cuda"``, ``"cuda:1"``, ``"cpu"``): each chunk, its targets
            and backgrounds and a copy of the model go there (:func:`kit.models.on_device`; the
            caller's model stays where it is); maps come back on the CPU. None = the CPU. Maps
            computed on a GPU are cached apart from CPU ones.

    Returns:
        :class:`kit.maps.Maps`: ``{name: (N,1,h,w) float tensor}`` in the order of ``names``,
        with ``.geometry[name]`` the upsampling spec of each map (coverage for SP grids), so
        every metric and plot turns the same map into the same pixels.

    Raises:
        ValueError: unknown method name, bad ``overrides`` key, mismatched ``target`` or
            ``backgrounds``, or a method that needs true backgrounds without ``backgrounds``.
    """
    from kit import cache as store
    from kit.attributors import METHODS
    from kit.distributed import map_tasks

    use_cache = cache
    names = list(names)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"names: unknown method(s) {unknown}; valid names: {', '.join(METHODS)}")
    overrides = dict(overrides or {})
    stray = [k for k in overrides if k not in METHODS]
    if stray:  # entries for methods not requested are fine (a shared profile), typos are not
        raise ValueError(f"overrides: unknown method(s) {stray}; valid names: {', '.join(METHODS)}")
    images("x", x)
    if device is not None:
        device = str(checks.device("device", device))
    n = x.shape[0]
    target = torch.as_tensor(target, dtype=torch.long).to("cpu")
    if target.ndim == 0:
        target = target.expand(n)
    if target.shape != (n,):
        raise ValueError(
            f"target: expected an int or shape ({n},), got shape {tuple(target.shape)}")
    if backgrounds is not None:
        images("backgrounds", backgrounds)
        if backgrounds.shape != x.shape:
            raise ValueError(f"backgrounds: expected shape {tuple(x.shape)} (aligned with x), "
                             f"got {tuple(backgrounds.shape)}")
        backgrounds = backgrounds.detach().cpu()

    digest = store.model_digest(model) if use_cache else ""
    chunks = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    tasks = []
    for name in names:
        m = METHODS[name]
        config = {"attributor": m.attributor, "remover": m.remover, **m.params,
                  **dict(overrides.get(name, {}))}
        oracle = needs_backgrounds(config["remover"])
        if oracle and backgrounds is None:
            raise ValueError(
                f"names: method {name!r} fills removed pixels from the true backgrounds "
                f"(remover {config['remover']!r}); pass backgrounds= (e.g. "
                f"WorldBatch.backgrounds), aligned with x")
        # the uniform signature: every attributor takes seed (and batch_size), no inspection
        kw = {**dict(overrides.get(name, {})), "seed": seed}
        if batch_size is not None:
            kw["batch_size"] = batch_size
        for s, e in chunks:
            # clones: a task carries its chunk's bytes only, not the whole batch's storage
            xs, ts = x[s:e].detach().cpu().clone(), target[s:e].clone()
            bs = backgrounds[s:e].clone() if oracle else None
            key = (cache_key(name, config, digest, xs, ts, seed, bs, device) if use_cache
                   else None)
            tasks.append({"name": name, "x": xs, "target": ts, "kw": kw,
                          "remover": config["remover"], "backgrounds": bs, "device": device,
                          "path": str(cache_dir() / f"{name}-{key}.pt") if key else None})
    results = map_tasks(map_task, tasks, client=client, shared={"model": model},
                        progress=progress, desc="maps")
    out = Maps()
    per = len(chunks)
    for i, name in enumerate(names):
        done = results[i * per:(i + 1) * per]
        out[name] = torch.cat([sal for sal, _ in done])
        out.geometry[name] = method_geometry(name, tuple(x.shape[-2:]), overrides.get(name))
        if timings is not None:
            timings[name] = float(sum(sec for _, sec in done))
    return out
