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

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from kit.paths import CACHE_DIR

__all__ = ["compute_maps", "cache_key", "CHUNK", "cache_dir"]

CHUNK = 16
"""Images per cached chunk (a divisor of the usual image counts keeps chunks shareable)."""

_SOURCES = ("attributors", "removers.py", "masks.py", "models.py", "nets.py", "defaults.py",
            "external.py")
_code_digest: str | None = None


def cache_dir() -> Path:
    """``CACHE_DIR/maps`` (``KIT_CACHE`` moves it)."""
    return Path(os.environ.get("KIT_CACHE", CACHE_DIR)) / "maps"


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def _code() -> str:
    """Digest of the kit source files a map depends on (computed once per process)."""
    global _code_digest
    if _code_digest is None:
        root = Path(__file__).resolve().parent
        files = []
        for name in _SOURCES:
            p = root / name
            files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
        _code_digest = _sha(torch.__version__.encode(),
                            *(f.relative_to(root).as_posix().encode() + f.read_bytes()
                              for f in files if f.exists()))
    return _code_digest


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return str((t.dtype, tuple(t.shape))).encode() + t.numpy().tobytes()


def _model_digest(model) -> str:
    state = model.state_dict()
    return _sha(type(model).__name__.encode(),
                *(k.encode() + _tensor_bytes(state[k]) for k in sorted(state)))


def _inpainter_digest() -> str:
    from kit.paths import DATA_DIR

    path = DATA_DIR / "world_inpainter.pt"
    return _sha(path.read_bytes()) if path.exists() else "missing"


def cache_key(name: str, config: Mapping, model_digest: str, x: torch.Tensor,
              target: torch.Tensor, seed: int) -> str | None:
    """The chunk's cache key, or None when the configuration cannot be keyed (e.g. a remover
    object instead of a name)."""
    if not all(isinstance(v, (str, int, float, bool, type(None), tuple, list)) for v in
               config.values()):
        return None
    parts = [name.encode(), repr(sorted(config.items())).encode(), model_digest.encode(),
             _tensor_bytes(x), _tensor_bytes(target), str(int(seed)).encode(), _code().encode()]
    if config.get("remover") == "inpaint":
        parts.append(_inpainter_digest().encode())
    return _sha(*parts)[:32]


def _load(path: Path) -> torch.Tensor | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable/truncated file (the unpickler raises many
        return None    # types) is recomputed and overwritten, never trusted


def _save(t: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(t.detach().cpu().contiguous(), tmp)
    os.replace(tmp, path)


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
) -> dict[str, torch.Tensor]:
    """Maps of every method in ``names`` for the images ``x``.

    Args:
        names: method names of :data:`kit.attributors.METHODS`.
        model: a :class:`kit.models.Classifier`.
        x: ``(N,3,H,W)`` images in [0,1].
        target: ``(N,)`` class indices (or an int for all images).
        overrides: per-method hyperparameter overrides, ``{name: {param: value}}``, e.g. a
            :data:`kit.attributors.PROFILES` entry; entries for methods not in ``names`` are
            ignored, unknown method names are an error.
        seed: passed to every attributor that takes one (part of the cache key).
        batch_size: passed to the attributors (does not change the maps, only speed and memory).
        cache: read and write ``CACHE_DIR/maps``.
        progress: a tqdm bar over (method, chunk) steps.
        timings: if a dict is given, it receives ``{name: seconds spent computing}`` (0 for a
            method served entirely from the cache).

    Returns:
        ``{name: (N,1,h,w) float tensor}`` in the order of ``names``.

    Raises:
        ValueError: unknown method name, bad ``overrides`` key, or mismatched ``target``.
    """
    import inspect

    from kit.attributors import METHODS, explain, get_attributor
    from kit.models import _check_images

    names = list(names)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"names: unknown method(s) {unknown}; valid names: {', '.join(METHODS)}")
    overrides = dict(overrides or {})
    stray = [k for k in overrides if k not in METHODS]
    if stray:  # entries for methods not requested are fine (a shared profile), typos are not
        raise ValueError(f"overrides: unknown method(s) {stray}; valid names: {', '.join(METHODS)}")
    _check_images("x", x)
    n = x.shape[0]
    target = torch.as_tensor(target, dtype=torch.long).to("cpu")
    if target.ndim == 0:
        target = target.expand(n)
    if target.shape != (n,):
        raise ValueError(
            f"target: expected an int or shape ({n},), got shape {tuple(target.shape)}")

    digest = _model_digest(model) if cache else ""
    chunks = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    bar = tqdm(total=len(names) * len(chunks), desc="maps", disable=not progress, leave=False)
    out: dict[str, torch.Tensor] = {}
    for name in names:
        m = METHODS[name]
        config = {"attributor": m.attributor, "remover": m.remover, **m.params,
                  **dict(overrides.get(name, {}))}
        kw = dict(overrides.get(name, {}))
        accepted = inspect.signature(get_attributor(m.attributor)).parameters
        if batch_size is not None and "batch_size" in accepted:
            kw["batch_size"] = batch_size
        if "seed" in accepted:  # deterministic attributors (SP, gradients) take no seed
            kw["seed"] = seed
        spent = 0.0
        parts = []
        for s, e in chunks:
            xs, ts = x[s:e], target[s:e]
            key = cache_key(name, config, digest, xs, ts, seed) if cache else None
            path = cache_dir() / f"{name}-{key}.pt" if key else None
            sal = _load(path) if path is not None and path.exists() else None
            if sal is None:
                t0 = time.perf_counter()
                sal = explain(name, model, xs, ts, **kw).detach().cpu()
                spent += time.perf_counter() - t0
                if path is not None:
                    _save(sal, path)
            parts.append(sal)
            bar.update(1)
        out[name] = torch.cat(parts)
        if timings is not None:
            timings[name] = spent
    bar.close()
    return out
