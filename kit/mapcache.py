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
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from kit import cache
from kit.checks import images
from kit.maps import Maps, method_geometry

__all__ = ["compute_maps", "cache_key", "CHUNK", "cache_dir", "SOURCES"]

CHUNK = 16
"""Images per cached chunk (a divisor of the usual image counts keeps chunks shareable)."""

SOURCES = ("attributors", "engine.py", "removers.py", "masks.py", "models", "nets.py",
           "defaults.py", "checks.py")
"""The kit sources (relative to ``kit/``) a map depends on: editing one invalidates the maps."""


def cache_dir() -> Path:
    """``<cache root>/maps`` (``KIT_CACHE`` moves it, read at call time)."""
    return cache.cache_root() / "maps"


def cache_key(name: str, config: Mapping, model_digest: str, x: torch.Tensor,
              target: torch.Tensor, seed: int) -> str | None:
    """The chunk's cache key, or None when the configuration cannot be keyed (e.g. a remover
    object instead of a name)."""
    if not all(isinstance(v, (str, int, float, bool, type(None), tuple, list)) for v in
               config.values()):
        return None
    parts = [name, repr(sorted(config.items())), model_digest, x, target, str(int(seed)),
             cache.code_digest(*SOURCES)]
    from kit.removers import remover_files

    # shipped checkpoints the remover's fills depend on (a retrained inpainter changes the maps)
    parts += [cache.file_digest(f) for f in remover_files(config.get("remover"))]
    return cache.digest(*parts)


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
            method served entirely from the cache).

    Returns:
        :class:`kit.maps.Maps`: ``{name: (N,1,h,w) float tensor}`` in the order of ``names``,
        with ``.geometry[name]`` the upsampling spec of each map (coverage for SP grids), so
        every metric and plot turns the same map into the same pixels.

    Raises:
        ValueError: unknown method name, bad ``overrides`` key, or mismatched ``target``.
    """
    from kit import cache as store
    from kit.attributors import METHODS, explain

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
    n = x.shape[0]
    target = torch.as_tensor(target, dtype=torch.long).to("cpu")
    if target.ndim == 0:
        target = target.expand(n)
    if target.shape != (n,):
        raise ValueError(
            f"target: expected an int or shape ({n},), got shape {tuple(target.shape)}")

    digest = store.model_digest(model) if use_cache else ""
    chunks = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    bar = tqdm(total=len(names) * len(chunks), desc="maps", disable=not progress, leave=False)
    out = Maps()
    for name in names:
        m = METHODS[name]
        config = {"attributor": m.attributor, "remover": m.remover, **m.params,
                  **dict(overrides.get(name, {}))}
        # the uniform signature: every attributor takes seed (and batch_size), no inspection
        kw = {**dict(overrides.get(name, {})), "seed": seed}
        if batch_size is not None:
            kw["batch_size"] = batch_size
        spent = 0.0
        parts = []
        for s, e in chunks:
            xs, ts = x[s:e], target[s:e]
            key = cache_key(name, config, digest, xs, ts, seed) if use_cache else None
            path = cache_dir() / f"{name}-{key}.pt" if key else None
            sal = store.read(path) if path is not None else None
            if sal is None:
                t0 = time.perf_counter()
                sal = explain(name, model, xs, ts, **kw).detach().cpu()
                spent += time.perf_counter() - t0
                if path is not None:
                    store.write(sal, path)
            parts.append(sal)
            bar.update(1)
        out[name] = torch.cat(parts)
        out.geometry[name] = method_geometry(name, tuple(x.shape[-2:]), overrides.get(name))
        if timings is not None:
            timings[name] = spent
    bar.close()
    return out
