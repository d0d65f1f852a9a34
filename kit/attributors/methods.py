"""The paper's method names as (attributor, remover, hyperparameters) triples, for notebooks.

Agarwal & Nguyen compare each perturbation method X with X-G, the same method whose removed pixels
are filled by a generative inpainter; in kit that is the same attributor with the ``inpaint``
remover. Hyperparameters left out of ``params`` take the attributor's defaults, which are
resolved from the image size (:mod:`kit.defaults`: the 64×64 project values, the 224×224
reference values otherwise). ``reference`` records the paper's 224×224 settings beside them.

Usage::

    from kit.attributors import METHODS, explain
    sal = explain("SP-G", model, x, target)          # sliding patch with the world inpainter
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kit.attributors.registry import get_attributor

__all__ = ["METHODS", "Method", "PROFILES", "budget", "explain", "pairs", "GENERATIVE"]


@dataclass(frozen=True)
class Method:
    """One named configuration.

    Attributes:
        attributor: key of :data:`kit.attributors.ATTRIBUTORS`.
        remover: a :mod:`kit.removers` name, or None for methods that remove nothing.
        params: hyperparameters passed to the attributor (the rest are its defaults).
        reference: the published 224×224 settings, for the record.
    """

    attributor: str
    remover: str | None = None
    params: dict = field(default_factory=dict)
    reference: str = ""


_SP = "window 29, stride 3 at 224 (GAM); 8 / 2 at 64"
_LIME = "500 samples, 50 SLIC segments, compactness 30, sigma 3 at 224 (GAM); sigma 1 at 64"
_MP = (
    "28x28 mask, 300 Adam steps lr 0.1, L1 1e-4, TV 1e-2 (beta 3), jitter 4 px, blur radius 10 "
    "at 224; 8x8 grid, jitter 1 px, blur sigma 3 at 64"
)
_MP2 = "MP without blur radius, TV, jitter and noise; 14x14 grid at 224, 8x8 at 64"
_FIDO = "56x56 dropout grid at 224, 16x16 at 64; CA = the generative inpainter"
_RISE = "4000 masks, 7x7 cells, p 0.5"
_SHAP = "KernelSHAP (Lundberg & Lee 2017) on LIME's 50 SLIC segments, 2048 coalitions"

METHODS: dict[str, Method] = {
    "SP": Method("sliding_patch", "gray", reference=_SP),
    "SP-G": Method("sliding_patch", "inpaint", reference=_SP),
    "LIME": Method("lime", "gray", reference=_LIME),
    "LIME-G": Method("lime", "inpaint", reference=_LIME),
    "MP": Method("meaningful_perturbation", "blur", reference=_MP),
    "MP-G": Method("meaningful_perturbation", "inpaint", reference=_MP),
    "MP2": Method("mp2", "blur", reference=_MP2),
    "MP2-G": Method("mp2", "inpaint", reference=_MP2),
    "FIDO-CA-SDR": Method("fido", "inpaint", {"objective": "sdr"}, _FIDO),
    "FIDO-CA-SSR": Method("fido", "inpaint", {"objective": "ssr"}, _FIDO),
    "KernelSHAP": Method("kernel_shap", "gray", reference=_SHAP),
    "KernelSHAP-G": Method("kernel_shap", "inpaint", reference=_SHAP),
    "RISE": Method("rise", "gray", reference=_RISE),
    "RISE-G": Method("rise", "inpaint", reference=_RISE),
    "Saliency": Method("saliency", reference="max |gradient| over channels"),
    "InputXGradient": Method("input_x_gradient"),
    "IntegratedGradients": Method("integrated_gradients", reference="50 steps, black baseline"),
    "SmoothGrad": Method("smoothgrad", reference="50 samples, spread 0.15"),
    "SmoothGrad2": Method("smoothgrad_sq", reference="50 samples, spread 0.15"),
    "VarGrad": Method("vargrad", reference="50 samples, spread 0.15"),
    "GuidedBackprop": Method("guided_backprop"),
    "GradCAM": Method("grad_cam"),
    "random": Method("random"),
    "sobel": Method("sobel", reference="ROAR's scipy.ndimage.sobel(img, axis=0), channel-summed"),
}
"""Paper name -> :class:`Method`."""


GENERATIVE = ("inpaint",)
"""Remover names that make a method the paper's "X-G" (a generative fill)."""


def pairs(methods=None) -> list[tuple[str, str]]:
    """The (X, X-G) pairs among ``methods`` (default: all of :data:`METHODS`), from the registry.

    X-G is the method with the same attributor and parameters as X whose remover is generative
    (:data:`GENERATIVE`) while X's is not. Nothing is hand-listed: adding a method's X-G twin to
    :data:`METHODS` adds its pair to every table.
    """
    names = list(METHODS) if methods is None else [m for m in methods if m in METHODS]
    out = []
    for x in names:
        mx = METHODS[x]
        if mx.remover is None or mx.remover in GENERATIVE:
            continue
        for g in names:
            mg = METHODS[g]
            if (mg.attributor == mx.attributor and mg.params == mx.params
                    and mg.remover in GENERATIVE):
                out.append((x, g))
    return out


_FAST_SP = {"stride": 4}
_INPAINTED = ("inpaint", "inpaint_removal")
"""Removers whose fills run an inpainter: the costly rungs (G, R) of a method's family."""


def _family(attributor: str, params: dict, inpainted: dict | None = None) -> dict[str, dict]:
    """Profile entries for every :data:`METHODS` entry of ``attributor``: ``inpainted`` (default
    ``params``) for the rungs whose remover runs an inpainter, ``params`` for the others (the X
    rung and the oracle, whose fills cost nothing)."""
    inp = params if inpainted is None else inpainted
    return {name: dict(inp if m.remover in _INPAINTED else params)
            for name, m in METHODS.items() if m.attributor == attributor}


PROFILES: dict[str, dict[str, dict]] = {
    # The methods' own defaults: the paper's settings, scaled to the image size.
    "reference": {},
    # `make run` on 2 CPU cores (params/*.yaml). Measured per 64x64 image at the reference
    # settings on 2 shared cores: SP-G 9.4 s, LIME-G 6.2 s, MP-G 4.2 s, FIDO-CA 36 s, against
    # SP 1.3 s; 200 images x every method would take hours, so the run cuts the costly budgets.
    # These are budget choices, not the papers' settings: run a notebook with
    # profile="reference" for those. The sample and iteration budgets are checked by
    # kit.studies.convergence (map at B vs 4B on 16 world test images, Spearman >= 0.95;
    # docs/results/convergence.csv): a method that does not pass is budget-limited in the
    # summary.
    "full": {
        **_family("sliding_patch", {"stride": 4}, {"stride": 4, "local": True}),  # 225 windows
        # (ref. 841); SP-G inpaints crops of window + 2*window around each patch (tests)
        **_family("lime", {"n_samples": 100}),                     # reference 500
        **_family("meaningful_perturbation", {"iterations": 50}),  # reference 300
        **_family("mp2", {"iterations": 50}),
        # reference 300 x 8 copies; the learning rate decays linearly to 0 over the run, so
        # the logits move by at most lr * E / 2: 30 steps left every drop probability in
        # [0.32, 0.68] (science audit §4), 100 steps reach [0.08, 0.92]
        **_family("fido", {"iterations": 100, "n_copies": 2}),
        **_family("rise", {"n_masks": 1000}, {"n_masks": 250}),    # reference 4000
    },
    # Seconds per notebook: the defaults that nbval and the papermill smoke tests execute. The
    # numbers it produces exercise the code, they are not results.
    "cheap": {
        **_family("sliding_patch", _FAST_SP, {**_FAST_SP, "local": True}),
        **_family("lime", {"n_samples": 40}),
        **_family("meaningful_perturbation", {"iterations": 10}),
        **_family("mp2", {"iterations": 10}),
        **_family("fido", {"iterations": 10, "n_copies": 2}),
        **_family("rise", {"n_masks": 200}, {"n_masks": 50}),
        "SmoothGrad": {"n_samples": 8}, "SmoothGrad2": {"n_samples": 8},
        "VarGrad": {"n_samples": 8}, "IntegratedGradients": {"steps": 16},
    },
    # ROAR/KAR (notebook 06): the ROAR replication's k = J = 25 (methods.md §3.6), and a sliding
    # patch of 8 px with stride 8 (64 patches instead of 841; SP-G fills each patch from a local
    # crop), because SP-G on every training image at the default stride 2 costs several seconds
    # per image on a CPU and ROAR needs maps of every training image.
    "roar": {
        "IntegratedGradients": {"steps": 25},
        "SmoothGrad": {"n_samples": 25}, "SmoothGrad2": {"n_samples": 25},
        "VarGrad": {"n_samples": 25},
        "SP": {"stride": 8}, "SP-G": {"stride": 8, "local": True},
    },
}
"""Named hyperparameter budgets, ``{profile: {method name: overrides}}``, shared by the notebooks
(their ``profile`` parameter) so that maps computed by one notebook are reused by the next through
:mod:`kit.mapcache`. Methods absent from a profile run at their defaults. Every rung of a method's
family (X, X-G, X-R, X-O) gets an entry (:func:`_family`), so a new rung needs no new line."""


def budget(profile: str, methods, by_attributor=None) -> dict[str, dict]:
    """Per-method hyperparameter overrides: a profile's entries, then explicit ones per attributor.

    This is what the notebooks hand to :func:`kit.mapcache.compute_maps`, so that every notebook
    run with the same profile asks for the same maps (same cache keys).

    Args:
        profile: a key of :data:`PROFILES`.
        methods: method names of :data:`METHODS`.
        by_attributor: ``{attributor: {param: value}}`` applied on top of the profile to every
            method of that attributor (e.g. ``{"lime": {"n_samples": 50}}``); a value of 0 or
            None keeps the profile's (or the method's default) value.

    Returns:
        ``{method: {param: value}}`` for the methods that have any override.

    Raises:
        ValueError: unknown profile or method name (the message lists the valid ones).
    """
    if profile not in PROFILES:
        raise ValueError(
            f"profile: unknown profile {profile!r}; valid names: {', '.join(PROFILES)}")
    methods = list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown method(s) {unknown}; valid names: {', '.join(METHODS)}")
    extra = dict(by_attributor or {})
    out = {}
    for m in methods:
        o = {**PROFILES[profile].get(m, {}),
             **{k: v for k, v in extra.get(METHODS[m].attributor, {}).items() if v}}
        if o:
            out[m] = o
    return out


def explain(name: str, model, x, target, **overrides):
    """Run the method called ``name`` in :data:`METHODS`; ``overrides`` replace its parameters.

    Returns:
        The attributor's ``(N,1,h,w)`` map.

    Raises:
        ValueError: unknown method name (the message lists the valid ones).
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid names: {', '.join(METHODS)}")
    m = METHODS[name]
    kwargs = dict(m.params)
    if m.remover is not None:
        kwargs["remover"] = m.remover
    kwargs.update(overrides)
    return get_attributor(m.attributor)(model, x, target, **kwargs)
