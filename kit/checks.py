"""Argument checks shared by the whole package: one vocabulary, one message format.

Every check names the argument, says what was expected and shows what was given, e.g.
``ValueError: window must be an integer >= 1, got 0``; an unknown name lists the valid ones. The
checks return the normalised value, so a caller writes ``n = checks.positive_int("n", n)``.

Usage::

    from kit import checks
    checks.images("x", x)                          # float (N,3,H,W) in [0,1], no NaN
    k = checks.positive_int("n_samples", k, 2)     # int >= 2 (bools refused)
    f = checks.fraction("fraction", f)             # float in (0, 1)
    name = checks.choice("mode", mode, MODES)      # one of MODES, else lists them
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = [
    "device",
    "images", "positive_int", "number", "seed", "fraction", "size2", "maps", "choice", "boolean",
]


def images(name: str, x) -> torch.Tensor:
    """Raise unless ``x`` is a float ``(N,3,H,W)`` tensor in [0,1] without NaNs; return it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N,3,H,W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0,1], got dtype {x.dtype}")
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{name} must be in [0,1] (pixel space), got values in [{lo:.3g}, {hi:.3g}]"
        )
    return x


def positive_int(name: str, value, minimum: int = 1) -> int:
    """Raise unless ``value`` is an integer (not a bool) >= ``minimum``; return it as int."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def number(name: str, value, *, minimum: float | None = None, maximum: float | None = None,
           strict: bool = False) -> float:
    """Raise unless ``value`` is a real number (not a bool) in the stated range; return a float.

    Args:
        minimum, maximum: bounds (None = unbounded on that side).
        strict: exclude the bounds themselves (``(minimum, maximum)`` instead of ``[...]``).
    """
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value == value
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if ok and maximum is not None:
        ok = value < maximum if strict else value <= maximum
    if not ok:
        lo = "-inf" if minimum is None else f"{minimum:g}"
        hi = "inf" if maximum is None else f"{maximum:g}"
        brackets = ("(", ")") if strict else ("[", "]")
        raise ValueError(f"{name} must be a number in {brackets[0]}{lo}, {hi}{brackets[1]}, "
                         f"got {value!r}")
    return float(value)


def seed(name: str, value) -> int:
    """Raise unless ``value`` is an integer in ``[0, 2**32)`` (numpy's and torch's common range)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ValueError(f"{name} must be an integer in [0, 2**32), got {value!r}")
    return int(value)


def fraction(name: str, value, *, closed: bool = False) -> float:
    """Raise unless ``value`` is a number in ``(0, 1)`` (``[0, 1]`` with ``closed=True``)."""
    return number(name, value, minimum=0.0, maximum=1.0, strict=not closed)


def size2(name: str, size) -> tuple[int, int]:
    """``size`` as ``(H, W)``: an int ``n`` means ``(n, n)``; raise unless positive ints."""
    if isinstance(size, torch.Size):
        size = tuple(size)
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        isinstance(size, (tuple, list)) and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)
    ):
        return int(size[0]), int(size[1])
    raise ValueError(f"{name} must be a positive int or (H, W) positive ints, got {size!r}")


def maps(name: str, sal, n: int | None = None) -> torch.Tensor:
    """Raise unless ``sal`` is a float ``(N,1,h,w)`` tensor (``N == n`` when given); return it.

    NaN values are allowed here: metrics count them (a map that is NaN is reported, never dropped
    silently).
    """
    if not isinstance(sal, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N,1,h,w), got {type(sal).__name__}")
    if sal.dim() != 4 or sal.shape[1] != 1:
        raise ValueError(f"{name} must have shape (N,1,h,w), got {tuple(sal.shape)}")
    if not sal.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got dtype {sal.dtype}")
    if n is not None and sal.shape[0] != n:
        raise ValueError(f"{name} must hold {n} maps (one per image), got {sal.shape[0]}")
    return sal


def choice(name: str, value, valid: Iterable, what: str = "") -> object:
    """Raise unless ``value`` is one of ``valid``; the message lists the valid names."""
    valid = list(valid)
    if isinstance(value, (list, dict, set)) or value not in valid:
        kind = f"unknown {what} " if what else ""
        raise ValueError(f"{name}: {kind}{value!r}; valid names: "
                         f"{', '.join(str(v) for v in valid)}")
    return value


def boolean(name: str, value) -> bool:
    """Raise unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def device(name: str, value) -> torch.device:
    """``value`` as a ``torch.device`` (a device or its name: ``"cpu"``, ``"cuda:1"``)."""
    try:
        return torch.device(value)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{name}: expected a torch device such as 'cpu' or 'cuda', got "
                         f"{value!r}") from err
