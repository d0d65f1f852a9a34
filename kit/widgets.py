"""Interactive explorer: one image, one method, one or two removers, live (style.md §8).

Pick an image (a world test index, or a user image file), a method of
:data:`kit.attributors.METHODS`, a remover of :data:`kit.removers.REMOVERS` (every rung of the
method ladder: gray, blur, telea, inpaint, inpaint_removal, and for world images, which have a
true background, oracle and the continuum ``blend`` with its ``lam`` slider) and the
hyperparameters the method's attributor accepts; see the heatmap overlay, a few counterfactuals
under the remover (the map's most relevant pixels removed) and the deletion curve with its AUC.
A second view compares two removers side by side on the same method.

This module is the view only. What it shows is computed by :func:`kit.explore.compute` (an
:class:`kit.explore.Exploration`), drawn by :mod:`kit.viz.explore`, for an image loaded by
:func:`kit.data.load_image`; all three work without widgets (notebooks, papermill, nbval).

The view is pure-Python ipywidgets (imported inside the functions, no custom front-end bundle):
matplotlib figures rendered to PNG into ``ipywidgets.Image``, sliders (:data:`METHOD_SLIDERS`,
:data:`REMOVER_SLIDERS`) with ``continuous_update=False`` and a small LRU cache of the last
results. Usage in any notebook::

    from kit import widgets
    widgets.explorer()                      # world test image 0, SP, gray; a second tab compares
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from kit import explore
from kit.attributors import METHODS
from kit.data import load_image
from kit.viz.explore import curve_png, overlay_png, strip_png

__all__ = [
    "METHOD_SLIDERS",
    "REMOVER_SLIDERS",
    "ExplorerView",
    "Slider",
    "explorer",
    "explorer_view",
]


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
"""The slider of each keyword of :data:`kit.explore.METHOD_HYPERPARAMETERS` (shown when the
chosen method's attributor accepts it)."""

REMOVER_SLIDERS: dict[str, dict[str, Slider]] = {
    "blur": {"sigma": Slider("sigma", "blur sigma", 0.5, 10.0, 0.5, integer=False)},
    "noise": {"std": Slider("std", "noise std", 0.05, 1.0, 0.05, integer=False)},
    "blend": {"lam": Slider("lam", "λ (true bg)", 0.0, 1.0, 0.25, integer=False)},
}
"""Remover name -> the slider of each of its :data:`kit.explore.REMOVER_OPTIONS`."""


class ExplorerView:
    """One explorer view: controls, outputs, a small LRU cache and the last results.

    Built by :func:`explorer_view`; displays itself in a notebook. ``controls`` (name ->
    widget: ``index``, ``upload``, ``target``, ``method``, ``remover_0`` [, ``remover_1``],
    the method's hyperparameter sliders by keyword, remover options as
    ``remover_0.sigma`` etc.), ``images`` (``heatmap_0``, ``strip_0`` [, ``..._1``], ``curve``),
    ``progress``, ``status``, ``results`` (label -> :class:`~kit.explore.Exploration` of the
    last update) and ``error`` (the last error message, or None) are public for tests and scripting.
    """

    def __init__(self, model, *, image, method, removers, params, seed, size, cache_size):
        import ipywidgets as w

        self.model, self.seed, self.size = model, seed, size
        self.cache: OrderedDict = OrderedDict()
        self.cache_size = cache_size
        self.results: dict[str, explore.Exploration] = {}
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
        offered = self._offered()
        for i, r in enumerate(removers):
            label = f"remover {'AB'[i]}" if self.n > 1 else "remover"
            if r not in offered:
                raise ValueError(f"removers: {r!r} needs the image's true background, which "
                                 f"image {image!r} does not have; valid: {', '.join(offered)}")
            c[f"remover_{i}"] = w.Dropdown(options=offered, value=r,
                                           description=label, style=slider["style"])
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

    def _offered(self) -> list[str]:
        """The removers this image allows: oracle and blend only with a true background."""
        return explore.remover_names(backgrounds=self.image.background is not None)

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
        old = METHODS[self._hp_method].attributor if self._hp_method else None
        for name in METHOD_SLIDERS:
            slider = self.controls.pop(name, None)
            if slider is not None:
                self._hp_memory[(old, name)] = slider.value
        method = self.controls["method"].value
        attributor = METHODS[method].attributor
        hp = explore.method_hyperparameters(method, self.size)
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
        opts = explore.remover_options(name, self.size)
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
            # a user image has no true background: no oracle/blend; such a choice falls to gray
            offered = self._offered()
            for i in range(self.n):
                dd = self.controls[f"remover_{i}"]
                value = dd.value if dd.value in offered else "gray"
                dd.options = offered
                dd.value = value
                self._rebuild_ropts(i)
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
        self._hold = True
        try:
            self._rebuild_hp()
            paired = METHODS[change["new"]].remover
            if paired in self.controls["remover_0"].options and self.n == 1:
                # SP-G picks inpaint, SP-O the oracle (world images); the user may override
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
        """The selection as keyword arguments of :func:`kit.explore.compute` (one per remover)."""
        c = self.controls
        hp = {k: c[k].value
              for k in explore.method_hyperparameters(c["method"].value, self.size)}
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

                    self.cache[key] = explore.compute(
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
            self.images[f"heatmap_{i}"].value = overlay_png(self.image.x, ex)
            self.images[f"strip_{i}"].value = strip_png(self.image.x, ex)
        self.images["curve"].value = curve_png(results)
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
        image: initial image: world test index, path or bytes (see :func:`kit.data.load_image`).
        method: initial :data:`kit.attributors.METHODS` name.
        removers: one or two remover names (two = the comparison view).
        params: initial hyperparameters (keys of :func:`kit.explore.method_hyperparameters`).
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
        explore.remover_options(r)  # validates
    explore.method_hyperparameters(method)  # validates the name
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
