"""Interactive explorer: one image, one method, one or two removers, live (style.md §8).

Pick an image (a world test index, or a user image file), a method of
:data:`kit.attributors.METHODS`, a remover of :data:`kit.removers.REMOVERS` and the
hyperparameters the method's attributor accepts; see the heatmap overlay, a few counterfactuals
under the remover (the map's most relevant pixels removed) and the deletion curve with its AUC
(:func:`kit.metrics.deletion.deletion_curve`, scored with the same remover). A second view compares
two removers side by side on the same method.

The computation is plain functions, usable and testable without a browser:

* :func:`load_image` -- a world test image or an image file as a ``(1,3,S,S)`` batch and target;
* :func:`method_hyperparameters` / :func:`remover_options` -- the slider values a method /
  remover accepts, with their defaults at the image size;
* :func:`compute` -- map, upsampled heatmap, counterfactuals and deletion curve
  (an :class:`Exploration`);
* :func:`plot_explorations` -- the same panels as one static matplotlib figure (notebooks
  without widgets, papermill, nbval).

The widget layer (:func:`explorer`, :func:`explorer_view`) is thin: pure-Python ipywidgets
(imported inside the functions, no custom front-end bundle), matplotlib figures rendered to PNG
into ``ipywidgets.Image``, sliders with ``continuous_update=False`` and a small LRU cache of the
last results. Usage in any notebook::

    from kit import widgets
    widgets.explorer()                      # world test image 0, SP, gray; a second tab compares
    ex = widgets.compute(model, x, target, method="SP", remover="inpaint")  # no widgets
"""

from __future__ import annotations

import hashlib
import inspect
import io
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "METHOD_SLIDERS",
    "REMOVER_SLIDERS",
    "Exploration",
    "ExplorerView",
    "ImageInput",
    "Slider",
    "compute",
    "explorer",
    "explorer_view",
    "figure_png",
    "load_image",
    "method_hyperparameters",
    "plot_explorations",
    "remover_names",
    "remover_options",
    "top_fraction_keep",
]


# ----------------------------------------------------------------------------------------------
# slider specifications
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slider:
    """One hyperparameter slider: attributor or remover keyword ``name`` in ``[min, max]``."""

    name: str
    label: str
    min: float
    max: float
    step: float
    integer: bool = True


METHOD_SLIDERS: dict[str, Slider] = {
    "window": Slider("window", "window (px)", 2, 32, 1),
    "stride": Slider("stride", "stride (px)", 1, 16, 1),
    "n_samples": Slider("n_samples", "samples", 10, 1000, 10),
    "n_masks": Slider("n_masks", "masks", 50, 4000, 50),
    "iterations": Slider("iterations", "iterations", 10, 300, 10),
}
"""Attributor keywords that get a slider, when the chosen method's attributor accepts them."""

REMOVER_SLIDERS: dict[str, dict[str, Slider]] = {
    "blur": {"sigma": Slider("sigma", "blur sigma", 0.5, 10.0, 0.5, integer=False)},
    "noise": {"std": Slider("std", "noise std", 0.05, 1.0, 0.05, integer=False)},
}
"""Remover name -> its options that get a slider."""

# Attributor keywords whose default is None (resolved from the image size in kit.defaults).
_SIZE_DEFAULTS = {
    ("sliding_patch", "window"): "sp_window",
    ("sliding_patch", "stride"): "sp_stride",
}

# Removers a user can pick: the registry less the wrappers that need an object to wrap.
_NOT_PICKABLE = ("precomputed", "cached")


def remover_names() -> list[str]:
    """Removers offered by the explorer (``kit.removers.REMOVERS`` less precomputed/cached)."""
    from kit.removers import REMOVERS

    return [r for r in REMOVERS if r not in _NOT_PICKABLE]


def _method(name: str):
    from kit.attributors import METHODS

    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid names: {', '.join(METHODS)}")
    return METHODS[name]


def _attributor_parameters(method: str) -> dict[str, inspect.Parameter]:
    from kit.attributors import get_attributor

    return dict(inspect.signature(get_attributor(_method(method).attributor)).parameters)


def method_hyperparameters(method: str, size: int = 64) -> dict[str, int]:
    """The slider hyperparameters that ``method``'s attributor accepts, with their defaults.

    Args:
        method: a :data:`kit.attributors.METHODS` name.
        size: image side, for defaults resolved from the image size (:mod:`kit.defaults`).

    Returns:
        Keyword -> default value, for the keys of :data:`METHOD_SLIDERS` the attributor takes
        (e.g. ``{"window": 8, "stride": 2}`` for ``"SP"`` at 64, ``{}`` for gradient methods).
        The method's own ``params`` in ``METHODS`` override the attributor's defaults.

    Raises:
        ValueError: unknown method.
    """
    from kit.defaults import resolve

    m = _method(method)
    params = _attributor_parameters(method)
    out = {}
    for name in METHOD_SLIDERS:
        if name not in params:
            continue
        value = m.params.get(name, params[name].default)
        if value is None:
            value = resolve(_SIZE_DEFAULTS[(m.attributor, name)], size)
        out[name] = value
    return out


def remover_options(remover: str, size: int = 64) -> dict[str, float]:
    """The slider options of ``remover`` with their defaults (``{"sigma": 3.0}`` for blur at 64).

    Raises:
        ValueError: unknown remover name (the message lists the valid ones).
    """
    from kit.defaults import resolve
    from kit.removers import REMOVERS

    names = remover_names()
    if remover not in names:
        raise ValueError(f"unknown remover {remover!r}; valid names: {', '.join(names)}")
    out = {}
    for name in REMOVER_SLIDERS.get(remover, {}):
        if (remover, name) == ("blur", "sigma"):
            out[name] = float(resolve("blur_sigma", size))
        else:
            out[name] = float(REMOVERS[remover].__dataclass_fields__[name].default)
    return out


# ----------------------------------------------------------------------------------------------
# image input
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInput:
    """An image to explain.

    Attributes:
        x: ``(1,3,S,S)`` float32 in [0,1].
        target: explained class (world: the ground-truth label; files: the model's top-1).
        name: short description (``"world test #3"`` or the file name).
        key: stable identity for caching.
        background: ``(1,3,S,S)`` true background (world images, for the ``oracle`` remover),
            else None.
        mask: ``(1,1,S,S)`` bool object mask (world images), else None.
    """

    x: torch.Tensor = field(repr=False)
    target: int
    name: str
    key: tuple
    background: torch.Tensor | None = field(default=None, repr=False)
    mask: torch.Tensor | None = field(default=None, repr=False)


def load_image(source, *, model=None, size: int = 64, seed: int = 0) -> ImageInput:
    """A world test image (by index) or a user image (path or encoded bytes) at ``size``.

    Files are decoded by Pillow (PNG, JPEG, ...), resized so the shorter side is ``size``
    (antialiased) and centre-cropped to a square: the "torchvision" preprocessing, which keeps
    the aspect ratio.

    Args:
        source: ``int`` world test index (>= 0), a path (``str``/``Path``) or ``bytes``.
        model: classifier giving the target of a user image (its top-1); needed for files.
        size: output side in pixels (the world classifier's input is 64).
        seed: seed of the world's test stream.

    Returns:
        An :class:`ImageInput`.

    Raises:
        TypeError: ``source`` of another type.
        ValueError: negative index, missing file, undecodable bytes, or a file without a model.
    """
    from kit import world

    if isinstance(source, bool) or not isinstance(source, (int, str, Path, bytes, bytearray)):
        raise TypeError(
            f"source must be a world test index (int), an image path or encoded bytes, "
            f"got {type(source).__name__}"
        )
    if isinstance(source, int):
        if source < 0:
            raise ValueError(f"source (world test index) must be >= 0, got {source}")
        b = world.sample(1, seed=seed, split="test", start=source, size=size)
        return ImageInput(b.images, int(b.labels[0]), f"world test #{source}",
                          ("world", seed, source, size), b.backgrounds, b.masks)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"source: no image file at {str(path)!r}")
        data, name = path.read_bytes(), path.name
    else:
        data, name = bytes(source), "uploaded image"
    if model is None:
        raise ValueError("model is needed for a user image: its target is the model's top-1")
    x = _decode(data, size)
    with torch.inference_mode():
        target = int(model(x.to(next(model.parameters()).device)).argmax(1)[0])
    key = ("file", hashlib.sha256(data).hexdigest(), size)
    return ImageInput(x, target, name, key)


def _decode(data: bytes, size: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2.functional import center_crop, pil_to_tensor, resize

    try:
        with Image.open(io.BytesIO(data)) as im:
            img = pil_to_tensor(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"source: could not decode the image ({err})") from err
    img = center_crop(resize(img, [size], antialias=True), [size, size])
    return (img.float() / 255).unsqueeze(0)


# ----------------------------------------------------------------------------------------------
# computation
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exploration:
    """What the explorer shows for one (image, method, remover, hyperparameters).

    Attributes:
        method, remover: names; ``params`` / ``remover_params``: the values used.
        sal: ``(1,1,h,w)`` the attributor's map at its native grid.
        heatmap: ``(1,1,H,W)`` the map upsampled by :func:`kit.masks.upsample` (``coverage``
            for sliding-patch grids, bilinear otherwise).
        fractions: ``(K,)`` fractions of the most relevant pixels removed in the counterfactuals.
        counterfactuals: ``(K,3,H,W)`` the image with those pixels removed by the remover.
        curve: the deletion :class:`~kit.metrics.deletion.Curve` (same remover).
    """

    method: str
    remover: str
    params: dict
    remover_params: dict
    sal: torch.Tensor = field(repr=False)
    heatmap: torch.Tensor = field(repr=False)
    fractions: tuple
    counterfactuals: torch.Tensor = field(repr=False)
    curve: object = field(repr=False)

    @property
    def auc(self) -> float:
        """Deletion AUC of the image (lower = the map finds what the score depends on)."""
        return float(self.curve.auc[0])


def _build_remover(name: str, options: dict, model, background):
    from kit.removers import TrueBackground, get_remover

    remover_options(name)  # validates the name
    if name == "oracle":
        if background is None:
            raise ValueError(
                "remover 'oracle' (the true background) exists only for world images; "
                "pick another remover for a user image"
            )
        return TrueBackground(fill_image=background)
    return get_remover(name, model=model, **options)


def top_fraction_keep(heatmap: torch.Tensor, fractions) -> torch.Tensor:
    """Keep-masks removing the ``q`` most relevant pixels of a map, for each ``q`` in fractions.

    Pixels are ranked by decreasing ``heatmap`` (stable: ties keep raster order), as deletion
    removes them.

    Args:
        heatmap: ``(1,1,H,W)`` map at image resolution.
        fractions: iterable of ``q`` in [0,1].

    Returns:
        ``(K,1,H,W)`` float keep-masks (0 = removed).
    """
    ok = isinstance(heatmap, torch.Tensor)
    if not (ok and heatmap.dim() == 4 and heatmap.shape[:2] == (1, 1)):
        shape = tuple(heatmap.shape) if ok else type(heatmap).__name__
        raise ValueError(f"heatmap must be a (1,1,H,W) tensor, got {shape}")
    fractions = [float(q) for q in fractions]
    if any(not 0 <= q <= 1 for q in fractions):
        raise ValueError(f"fractions must be in [0,1], got {fractions}")
    h, w = heatmap.shape[-2:]
    order = torch.sort(heatmap.flatten(), descending=True, stable=True).indices
    keep = torch.ones(len(fractions), h * w, dtype=heatmap.dtype, device=heatmap.device)
    for i, q in enumerate(fractions):
        keep[i, order[: round(q * h * w)]] = 0
    return keep.view(-1, 1, h, w)


def compute(
    model,
    x: torch.Tensor,
    target: int,
    *,
    method: str = "SP",
    remover: str = "gray",
    params: dict | None = None,
    remover_params: dict | None = None,
    background: torch.Tensor | None = None,
    fractions=(0.1, 0.25, 0.5),
    steps: int = 28,
    seed: int = 0,
    progress: bool = False,
    on_stage=None,
) -> Exploration:
    """Map, heatmap, counterfactuals and deletion curve for one image: the explorer's model.

    The map is exactly ``kit.attributors.explain(method, model, x, target, remover=...,
    **params)`` (plus ``seed`` for attributors that take one). For methods that remove nothing
    (gradients, random) the remover only drives the counterfactuals and the deletion curve.

    Args:
        model: pixel-space classifier.
        x: ``(1,3,H,W)`` image in [0,1].
        target: explained class.
        method: a :data:`kit.attributors.METHODS` name.
        remover: a name of :func:`remover_names`.
        params: hyperparameters of :data:`METHOD_SLIDERS` the method accepts (others are
            rejected); missing ones take :func:`method_hyperparameters`' defaults.
        remover_params: remover options (:data:`REMOVER_SLIDERS`); missing ones take defaults.
        background: ``(1,3,H,W)`` true background, needed by the ``oracle`` remover.
        fractions: fractions of most relevant pixels removed in the counterfactuals.
        steps: deletion steps.
        seed: seed of stochastic methods.
        progress: tqdm bars in the attributor and the deletion curve.
        on_stage: optional callable ``(stage: int, label: str)`` called before each of the three
            stages (0 map, 1 counterfactuals, 2 deletion) and with ``(3, "done")`` at the end.

    Returns:
        An :class:`Exploration`.

    Raises:
        ValueError: bad image, unknown method/remover, a hyperparameter the method does not
            take, or ``stride > window``.
    """
    from kit.attributors import explain
    from kit.masks import upsample
    from kit.metrics.deletion import deletion_curve
    from kit.models import _check_images

    _check_images("x", x)
    if x.shape[0] != 1:
        raise ValueError(f"x must hold one image (1,3,H,W), got {tuple(x.shape)}")
    size = x.shape[-1]
    hp = method_hyperparameters(method, size)
    unknown = sorted(set(params or {}) - set(hp))
    if unknown:
        raise ValueError(
            f"params {unknown} are not taken by method {method!r}; valid: {sorted(hp) or 'none'}"
        )
    hp.update(params or {})
    ropts = remover_options(remover, size)
    unknown = sorted(set(remover_params or {}) - set(ropts))
    if unknown:
        raise ValueError(
            f"remover_params {unknown} are not options of remover {remover!r}; "
            f"valid: {sorted(ropts) or 'none'}"
        )
    ropts.update(remover_params or {})
    if "window" in hp and "stride" in hp and hp["stride"] > hp["window"]:
        raise ValueError(
            f"stride must be <= window (no gaps between patches), got window={hp['window']}, "
            f"stride={hp['stride']}"
        )
    rem = _build_remover(remover, ropts, model, background)
    stage = on_stage or (lambda i, label: None)

    stage(0, f"map: {method}")
    kwargs = dict(hp)
    accepted = _attributor_parameters(method)
    if "seed" in accepted:
        kwargs["seed"] = seed
    if "progress" in accepted:
        kwargs["progress"] = progress
    if _method(method).remover is not None:
        kwargs["remover"] = rem
    sal = explain(method, model, x, target, **kwargs).detach()
    if _method(method).attributor == "sliding_patch":
        heat = upsample(sal, size, mode="coverage", window=hp["window"], stride=hp["stride"])
    else:
        heat = upsample(sal, size)

    stage(1, f"counterfactuals: {remover}")
    keep = top_fraction_keep(heat, fractions)
    with torch.inference_mode():
        cfs = rem(x, keep).clone()

    stage(2, "deletion curve")
    curve = deletion_curve(model, x, heat, target, remover=rem, mode="deletion", steps=steps,
                           progress=progress)
    stage(3, "done")
    return Exploration(method, remover, hp, ropts, sal, heat, tuple(float(q) for q in fractions),
                       cfs, curve)


# ----------------------------------------------------------------------------------------------
# drawing (matplotlib Figures without pyplot: no global state, any backend)
# ----------------------------------------------------------------------------------------------


def _hwc(img: torch.Tensor) -> np.ndarray:
    return img.detach().cpu().float().permute(1, 2, 0).clamp(0, 1).numpy()


def _draw_overlay(ax, x: torch.Tensor, heatmap: torch.Tensor, title: str) -> None:
    h = heatmap[0, 0].detach().cpu().float().numpy()
    lim = float(np.abs(h).max()) or 1.0
    ax.imshow(_hwc(x[0]))
    # Opacity follows |map|, so pixels the map calls irrelevant show the image itself.
    alpha = np.clip(0.8 * np.abs(h) / lim, 0, 1)
    if h.min() < 0:  # signed map: symmetric limits, diverging colours
        ax.imshow(h, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=alpha)
    else:
        ax.imshow(h, cmap="inferno", vmin=0, vmax=lim, alpha=alpha)
    ax.set_title(title, fontsize=8)


def _draw_curves(ax, results: dict[str, Exploration]) -> None:
    for label, ex in results.items():
        c = ex.curve
        ax.plot(np.asarray(c.fractions), np.asarray(c.scores[0]),
                label=f"{label} (AUC {ex.auc:.3f})")
    ax.set_xlabel("fraction of pixels removed", fontsize=8)
    ax.set_ylabel("score of target", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)  # the score is a probability
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    ax.set_title("deletion (lower AUC = better)", fontsize=8)


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def plot_explorations(x: torch.Tensor, results: dict[str, Exploration], *, title: str = ""):
    """One static figure: per result a row (image, heatmap, counterfactuals), then the curves.

    Args:
        x: ``(1,3,H,W)`` the explained image.
        results: label -> :class:`Exploration` (e.g. one per remover).
        title: figure title.

    Returns:
        A pyplot Figure (shown by the notebook's inline backend, like :mod:`kit.viz`).
    """
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("results must hold at least one Exploration")
    k = max(len(ex.fractions) for ex in results.values())
    rows = len(results)
    fig = plt.figure(figsize=(1.7 * (k + 2) + 3.2, 1.9 * rows + 0.4))
    gs = fig.add_gridspec(rows, k + 3, width_ratios=[1] * (k + 2) + [2.0])
    for r, (label, ex) in enumerate(results.items()):
        ax = fig.add_subplot(gs[r, 0])
        ax.imshow(_hwc(x[0]))
        ax.set_title("image", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        _off(ax)
        ax = fig.add_subplot(gs[r, 1])
        _draw_overlay(ax, x, ex.heatmap, f"{ex.method} map")
        _off(ax)
        for i, q in enumerate(ex.fractions):
            ax = fig.add_subplot(gs[r, 2 + i])
            ax.imshow(_hwc(ex.counterfactuals[i]))
            ax.set_title(f"top {q:.0%} removed", fontsize=8)
            _off(ax)
    _draw_curves(fig.add_subplot(gs[:, k + 2]), results)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def figure_png(fig, dpi: int = 90, *, tight: bool = True) -> bytes:
    """PNG bytes of a matplotlib figure (what the widgets display).

    ``tight=False`` keeps the figure's own size, so the picture does not change size (and the
    page does not jump) when only a title changes.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def _overlay_png(x, ex: Exploration) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.4, 2.5))
    ax = fig.add_subplot()
    _draw_overlay(ax, x, ex.heatmap, f"{ex.method} · {ex.remover}")
    _off(ax)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9)
    return figure_png(fig, tight=False)


def _strip_png(x, ex: Exploration) -> bytes:
    from matplotlib.figure import Figure

    k = len(ex.fractions)
    fig = Figure(figsize=(1.6 * (k + 1), 1.9))
    fig.suptitle(ex.remover, fontsize=8, x=0.02, ha="left")
    axes = fig.subplots(1, k + 1)
    axes[0].imshow(_hwc(x[0]))
    axes[0].set_title("image", fontsize=8)
    for i, q in enumerate(ex.fractions):
        axes[i + 1].imshow(_hwc(ex.counterfactuals[i]))
        axes[i + 1].set_title(f"top {q:.0%} removed", fontsize=8)
    for ax in axes:
        _off(ax)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.78, wspace=0.08)
    return figure_png(fig, tight=False)


def _curve_png(results: dict[str, Exploration]) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4, 2.7))
    _draw_curves(fig.add_subplot(), results)
    fig.tight_layout()
    return figure_png(fig, tight=False)


# ----------------------------------------------------------------------------------------------
# widgets (thin layer)
# ----------------------------------------------------------------------------------------------


class ExplorerView:
    """One explorer view: controls, outputs, a small LRU cache and the last results.

    Built by :func:`explorer_view`; displays itself in a notebook. ``controls`` (name ->
    widget: ``index``, ``upload``, ``target``, ``method``, ``remover_0`` [, ``remover_1``],
    the method's hyperparameter sliders by keyword, remover options as
    ``remover_0.sigma`` etc.), ``images`` (``heatmap_0``, ``strip_0`` [, ``..._1``], ``curve``),
    ``progress``, ``status``, ``results`` (label -> :class:`Exploration` of the last update)
    and ``error`` (the last error message, or None) are public for tests and scripting.
    """

    def __init__(self, model, *, image, method, removers, params, seed, size, cache_size):
        import ipywidgets as w

        from kit.attributors import METHODS

        self.model, self.seed, self.size = model, seed, size
        self.cache: OrderedDict = OrderedDict()
        self.cache_size = cache_size
        self.results: dict[str, Exploration] = {}
        self.error: str | None = None
        self.updates = 0
        self._hold = False
        self._hp_memory: dict = {}
        self._hp_method = None
        self.image = load_image(image, model=model, size=size, seed=seed)
        self.n = len(removers)
        c = self.controls = {}
        slider = {"continuous_update": False, "style": {"description_width": "90px"}}
        c["index"] = w.BoundedIntText(image if isinstance(image, int) else 0, min=0, max=99_999,
                                      description="world test #", **{"style": slider["style"]})
        c["upload"] = w.FileUpload(accept="image/*", multiple=False, description="image file")
        c["target"] = w.Dropdown(options=[(f"{i}: {n}", i) for i, n in enumerate(model.classes)],
                                 value=self.image.target, description="target",
                                 style=slider["style"])
        c["method"] = w.Dropdown(options=list(METHODS), value=method, description="method",
                                 style=slider["style"])
        c["method"].add_class("kit-method")
        for i, r in enumerate(removers):
            label = f"remover {'AB'[i]}" if self.n > 1 else "remover"
            c[f"remover_{i}"] = w.Dropdown(options=remover_names(), value=r, description=label,
                                           style=slider["style"])
            c[f"remover_{i}"].add_class(f"kit-remover-{i}")
        self._slider_kw = slider
        self.hp_box = w.VBox()
        self.ropt_boxes = [w.VBox() for _ in removers]
        self._rebuild_hp(params)
        for i in range(self.n):
            self._rebuild_ropts(i)
        self.progress = w.IntProgress(value=0, min=0, max=3, description="idle",
                                      style=slider["style"])
        self.status = w.HTML()
        self.status.add_class("kit-status")
        self.images = {}
        # Fixed display widths (about the PNGs' own): an Image widget otherwise fills its box.
        px = lambda n: w.Layout(width=f"{n}px", height="auto")  # noqa: E731
        for i in range(self.n):
            self.images[f"heatmap_{i}"] = w.Image(format="png", layout=px(216))
            self.images[f"heatmap_{i}"].add_class(f"kit-heatmap-{i}")
            self.images[f"strip_{i}"] = w.Image(format="png", layout=px(576))
        self.images["curve"] = w.Image(format="png", layout=px(396))
        self.images["curve"].add_class("kit-curve")

        c["index"].observe(self._on_index, "value")
        c["upload"].observe(self._on_upload, "value")
        c["target"].observe(self._on_change, "value")
        c["method"].observe(self._on_method, "value")
        for i in range(self.n):
            c[f"remover_{i}"].observe(lambda ch, i=i: self._on_remover(i), "value")

        left = w.VBox([c["index"], c["upload"], c["target"], c["method"], self.hp_box]
                      + [v for i in range(self.n) for v in (c[f"remover_{i}"], self.ropt_boxes[i])]
                      + [self.progress, self.status],
                      layout=w.Layout(min_width="330px"))
        # Right: the heatmap(s) beside the deletion curve(s), the counterfactual strips below.
        top = w.HBox([self.images[f"heatmap_{i}"] for i in range(self.n)] + [self.images["curve"]])
        strips = w.VBox([self.images[f"strip_{i}"] for i in range(self.n)])
        self.widget = w.HBox([left, w.VBox([top, strips])])
        self.update()

    # --- control construction ------------------------------------------------------------

    def _make_slider(self, spec: Slider, value):
        import ipywidgets as w

        cls = w.IntSlider if spec.integer else w.FloatSlider
        s = cls(value=value, min=spec.min, max=spec.max, step=spec.step, description=spec.label,
                **self._slider_kw)
        s.observe(self._on_change, "value")
        return s

    def _rebuild_hp(self, params=None) -> None:
        # Values chosen earlier are remembered per (attributor, keyword), so SP -> SP-G keeps the
        # patch geometry and a detour through another method does not reset it.
        old = _method(self._hp_method).attributor if self._hp_method else None
        for name in METHOD_SLIDERS:
            slider = self.controls.pop(name, None)
            if slider is not None:
                self._hp_memory[(old, name)] = slider.value
        method = self.controls["method"].value
        attributor = _method(method).attributor
        hp = method_hyperparameters(method, self.size)
        hp.update({k: self._hp_memory[(attributor, k)] for k in hp
                   if (attributor, k) in self._hp_memory})
        hp.update({k: v for k, v in (params or {}).items() if k in hp})
        for name, value in hp.items():
            self.controls[name] = self._make_slider(METHOD_SLIDERS[name], value)
        self.hp_box.children = [self.controls[n] for n in hp]
        self._hp_method = method

    def _rebuild_ropts(self, i: int) -> None:
        prefix = f"remover_{i}."
        for k in [k for k in self.controls if k.startswith(prefix)]:
            del self.controls[k]
        name = self.controls[f"remover_{i}"].value
        opts = remover_options(name, self.size)
        for k, v in opts.items():
            self.controls[prefix + k] = self._make_slider(REMOVER_SLIDERS[name][k], v)
        self.ropt_boxes[i].children = [self.controls[prefix + k] for k in opts]

    # --- events ----------------------------------------------------------------------------

    def _on_change(self, _change=None) -> None:
        if not self._hold:
            self.update()

    def _set_image(self, source) -> None:
        try:
            self.image = load_image(source, model=self.model, size=self.size, seed=self.seed)
        except (TypeError, ValueError) as err:
            self._show_error(str(err))
            return
        self._hold = True
        try:
            self.controls["target"].value = self.image.target
        finally:
            self._hold = False
        self.update()

    def _on_index(self, change) -> None:
        self._set_image(int(change["new"]))

    def _on_upload(self, change) -> None:
        files = change["new"]
        if files:
            self._set_image(bytes(files[0]["content"]))

    def _on_method(self, change) -> None:
        from kit.attributors import METHODS

        self._hold = True
        try:
            self._rebuild_hp()
            paired = METHODS[change["new"]].remover
            if paired is not None and self.n == 1:  # SP-G picks inpaint; the user may override
                self.controls["remover_0"].value = paired
                self._rebuild_ropts(0)
        finally:
            self._hold = False
        self.update()

    def _on_remover(self, i: int) -> None:
        if self._hold:
            return
        self._rebuild_ropts(i)
        self.update()

    # --- computation -----------------------------------------------------------------------

    def current(self) -> dict:
        """The selection as keyword arguments of :func:`compute` (one dict per remover)."""
        c = self.controls
        hp = {k: c[k].value for k in method_hyperparameters(c["method"].value, self.size)}
        out = []
        for i in range(self.n):
            name = c[f"remover_{i}"].value
            prefix = f"remover_{i}."
            ropts = {k[len(prefix):]: c[k].value for k in c if k.startswith(prefix)}
            out.append(dict(method=c["method"].value, remover=name, params=hp,
                            remover_params=ropts, target=c["target"].value))
        return out

    def _label(self, i: int, kw: dict) -> str:
        opts = ", ".join(f"{k} {v:g}" for k, v in kw["remover_params"].items())
        base = kw["remover"] + (f" ({opts})" if opts else "")
        return f"{'AB'[i]}: {base}" if self.n > 1 else base

    def _show_error(self, msg: str) -> None:
        import html

        self.error = msg
        self.status.value = f"<span style='color:#b00'>{html.escape(msg)}</span>"
        self.progress.description = "error"

    def update(self) -> None:
        """Recompute (or take from the cache) and redraw every output."""
        import html

        self.error = None
        results = {}
        t0 = time.perf_counter()
        try:
            for i, kw in enumerate(self.current()):
                key = (self.image.key, self.seed, kw["method"], kw["remover"], kw["target"],
                       tuple(sorted(kw["params"].items())),
                       tuple(sorted(kw["remover_params"].items())))
                if key in self.cache:
                    self.cache.move_to_end(key)
                else:
                    def stage(s, label, i=i):
                        self.progress.value = s
                        self.progress.description = label.split(":")[0]
                        if s < 3:
                            self.status.value = html.escape(
                                f"computing {label}"
                                + (f" (remover {'AB'[i]})" if self.n > 1 else ""))

                    self.cache[key] = compute(
                        self.model, self.image.x, kw["target"], method=kw["method"],
                        remover=kw["remover"], params=kw["params"],
                        remover_params=kw["remover_params"], background=self.image.background,
                        seed=self.seed, on_stage=stage)
                    while len(self.cache) > self.cache_size:
                        self.cache.popitem(last=False)
                results[self._label(i, kw)] = self.cache[key]
        except (TypeError, ValueError) as err:
            self._show_error(str(err))
            return
        self.results = results
        for i, ex in enumerate(results.values()):
            self.images[f"heatmap_{i}"].value = _overlay_png(self.image.x, ex)
            self.images[f"strip_{i}"].value = _strip_png(self.image.x, ex)
        self.images["curve"].value = _curve_png(results)
        self.progress.value = 3
        self.progress.description = "done"
        target = self.model.classes[self.controls["target"].value]
        aucs = ", ".join(f"{k}: {ex.auc:.3f}" for k, ex in results.items())
        self.status.value = html.escape(
            f"{self.image.name}, target {target}; deletion AUC {aucs} "
            f"({time.perf_counter() - t0:.1f} s)")
        self.updates += 1

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def explorer_view(model=None, *, image=0, method: str = "SP", removers=("gray",),
                  params: dict | None = None, seed: int = 0, size: int = 64,
                  cache_size: int = 8) -> ExplorerView:
    """One explorer view with one remover (``removers=("gray",)``) or two side by side.

    Args:
        model: classifier; None loads the world classifier.
        image: initial image: world test index, path or bytes (see :func:`load_image`).
        method: initial :data:`kit.attributors.METHODS` name.
        removers: one or two remover names (two = the comparison view).
        params: initial hyperparameters (keys of :func:`method_hyperparameters`).
        seed: seed of the world's test stream and of stochastic methods.
        size: image side.
        cache_size: results kept in the view's LRU cache.

    Returns:
        An :class:`ExplorerView` (displays itself), already computed once.
    """
    from kit.models import load_classifier

    removers = tuple(removers)
    if len(removers) not in (1, 2):
        raise ValueError(f"removers must hold 1 or 2 names, got {removers!r}")
    for r in removers:
        remover_options(r)  # validates
    _method(method)
    if not (isinstance(cache_size, int) and cache_size >= 1):
        raise ValueError(f"cache_size must be an int >= 1, got {cache_size!r}")
    model = load_classifier("world") if model is None else model
    return ExplorerView(model, image=image, method=method, removers=removers, params=params,
                        seed=seed, size=size, cache_size=cache_size)


def explorer(model=None, *, image=0, method: str = "SP", remover: str = "gray",
             compare: tuple[str, str] = ("gray", "inpaint"), params: dict | None = None,
             seed: int = 0):
    """The one-call explorer: a tab with the single view and a tab comparing two removers.

    Args:
        model: classifier; None loads the world classifier.
        image: world test index, image path or bytes.
        method: initial method (both tabs).
        remover: remover of the first tab.
        compare: the two removers of the comparison tab.
        params: initial hyperparameters of the method.
        seed: seed of the world's test stream and of stochastic methods.

    Returns:
        An ``ipywidgets.Tab`` (children: the two views' widgets); ``tab.views`` holds the
        :class:`ExplorerView` objects.
    """
    import ipywidgets as w

    from kit.models import load_classifier

    model = load_classifier("world") if model is None else model
    views = [
        explorer_view(model, image=image, method=method, removers=(remover,), params=params,
                      seed=seed),
        explorer_view(model, image=image, method=method, removers=tuple(compare), params=params,
                      seed=seed),
    ]
    tab = w.Tab(children=[v.widget for v in views], titles=["explore", "compare removers"])
    tab.views = views
    return tab
