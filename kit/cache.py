"""The one disk cache: digests for keys, atomic checksummed writes, verified reads.

Maps (:mod:`kit.mapcache`), ROAR's modified data sets and retrainings, and GAD's support models all
store their results here, each in its own namespace folder under :func:`cache_root` (``KIT_CACHE``,
read at call time, so setting it after import moves every cache).

**Keys** are SHA-256 digests of everything that can change a result (:func:`digest`): the
configuration, the exact input bytes, the model's weights (:func:`model_digest`), shipped files
(:func:`file_digest`) and the source code the result depends on (:func:`code_digest`, which
includes the torch version), so editing a method never serves a stale entry.

**Entries** are written by :func:`write` through a temporary file in the same folder and
``os.replace``, so no reader ever sees a partial file, and two processes writing the same key
(identical content) is safe: the last rename wins. Each entry holds its payload and the SHA-256 of
the payload's serialised bytes; :func:`read` verifies it and returns None, with a warning, for a
truncated, corrupted or foreign file, so the caller recomputes and overwrites it. Tensors are
loaded with ``torch.load(..., weights_only=True)``.

Usage::

    from kit import cache
    key = cache.digest("SP", {"stride": 4}, x, cache.model_digest(clf),
                       cache.code_digest("masks.py"))
    path = cache.path("maps", f"SP-{key}.pt")
    sal = cache.read(path)
    if sal is None:
        sal = compute()
        cache.write(sal, path)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

__all__ = [
    "cache_root", "path", "digest", "tensor_bytes", "model_digest", "file_digest", "code_digest",
    "write", "read", "write_atomic_bytes", "remove_partial", "TMP_MARK",
]

_FORMAT = "kit-cache-1"
TMP_MARK = ".tmp-"
"""Marks the hidden temporary files (``.<name>.tmp-<random>``) that :func:`write_atomic_bytes`
renames into place; one left behind was being written by a process that was killed."""
_REPO = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    """The cache folder: ``KIT_CACHE`` if set (read now), else ``data/cache`` in the repository
    (the same default as :data:`kit.paths.CACHE_DIR`; not imported from there, since
    :mod:`kit.paths` writes through this module)."""
    return Path(os.environ.get("KIT_CACHE", _REPO / "data" / "cache"))


def path(namespace: str, name: str) -> Path:
    """``cache_root() / namespace / name``."""
    return cache_root() / namespace / name


def tensor_bytes(t: torch.Tensor) -> bytes:
    """Dtype, shape and raw bytes of a tensor (bfloat16 widened to float32 for numpy)."""
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return str((t.dtype, tuple(t.shape))).encode() + t.numpy().tobytes()


def _part_bytes(p) -> bytes:
    if isinstance(p, bytes):
        return p
    if isinstance(p, torch.Tensor):
        return tensor_bytes(p)
    if isinstance(p, str):
        return p.encode()
    if isinstance(p, Mapping):
        return json.dumps({str(k): _jsonable(v) for k, v in p.items()}, sort_keys=True).encode()
    return repr(p).encode()


def _jsonable(v):
    if isinstance(v, Mapping):
        return {str(k): _jsonable(u) for k, u in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(u) for u in v]
    if isinstance(v, (str, int, float, bool, type(None))):
        return v
    return repr(v)


def digest(*parts, length: int = 32) -> str:
    """Hex SHA-256 over ``parts`` (bytes, str, tensors, mappings, anything with a stable repr).

    Each part is hashed on its own first, so ``("ab", "c")`` and ``("a", "bc")`` differ.
    """
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(_part_bytes(p)).digest())
    return h.hexdigest()[:length]


def model_digest(model: torch.nn.Module) -> str:
    """Digest of a model's class name and state (every parameter and buffer)."""
    state = model.state_dict()
    return digest(type(model).__name__,
                  *(k.encode() + tensor_bytes(state[k]) for k in sorted(state)), length=64)


def file_digest(file: str | os.PathLike) -> str:
    """Digest of a file's bytes, or ``"missing"`` when it does not exist."""
    file = Path(file)
    return digest(file.read_bytes(), length=64) if file.exists() else "missing"


_CODE: dict[tuple[str, ...], str] = {}


def code_digest(*sources: str) -> str:
    """Digest of kit source files or folders (relative to ``kit/``) and the torch version.

    Computed once per process and set of sources.
    """
    key = tuple(sources)
    if key not in _CODE:
        root = Path(__file__).resolve().parent
        files = []
        for name in sources:
            p = root / name
            files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
        _CODE[key] = digest(torch.__version__,
                            *(f.relative_to(root).as_posix().encode() + f.read_bytes()
                              for f in files if f.exists()), length=64)
    return _CODE[key]


def write_atomic_bytes(data: bytes, file: str | os.PathLike) -> Path:
    """Write ``data`` to ``file`` through a same-folder temporary file and a rename."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    # a name no other writer can hold: workers on different machines sharing the cache folder
    # may have the same pid
    tmp = file.with_name(f".{file.name}{TMP_MARK}{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, file)
    finally:
        if tmp.exists():
            tmp.unlink()
    return file


def write(obj, file: str | os.PathLike) -> Path:
    """Store ``obj`` (tensors, dicts/lists of tensors and plain values) atomically, checksummed.

    Returns:
        The path written.
    """
    buf = io.BytesIO()
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().contiguous()
    torch.save(obj, buf)
    payload = buf.getvalue()
    record = io.BytesIO()
    torch.save({"format": _FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
                "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}, record)
    return write_atomic_bytes(record.getvalue(), file)


def read(file: str | os.PathLike, *, warn: bool = True):
    """The object stored at ``file`` by :func:`write`, or None when absent or not trustworthy.

    A file that cannot be read, is not a kit cache entry, or whose checksum does not match is
    reported with a warning (``warn=True``) and treated as absent: the caller recomputes it and
    overwrites the file.
    """
    file = Path(file)
    if not file.exists():
        return None
    try:
        rec = torch.load(file, map_location="cpu", weights_only=True)
        if not (isinstance(rec, dict) and rec.get("format") == _FORMAT):
            raise ValueError("not a kit cache entry")
        payload = rec["payload"].numpy().tobytes()
        if hashlib.sha256(payload).hexdigest() != rec["sha256"]:
            raise ValueError("checksum mismatch")
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable entry is recomputed, never trusted
        if warn:
            warnings.warn(f"cache entry {file} is unreadable or corrupted ({err}); recomputing it",
                          RuntimeWarning, stacklevel=2)
        return None


def remove_partial(folder: str | os.PathLike, *, older_than: float = 3600.0) -> list[Path]:
    """Delete temporary files that killed writers left in ``folder`` (recursively).

    Such files are never read as entries (entries appear only by rename), so leaving them is
    safe; this only reclaims their space. Files younger than ``older_than`` seconds are kept: a
    live writer (another worker) may still be about to rename them.

    Returns:
        The paths removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, gone = time.time(), []
    for f in folder.rglob(f".*{TMP_MARK}*"):
        try:
            if now - f.stat().st_mtime >= older_than:
                f.unlink()
                gone.append(f)
        except FileNotFoundError:  # renamed or removed meanwhile by its writer
            continue
    return gone
