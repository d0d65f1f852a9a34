"""The paper's method names as (attributor, remover, hyperparameters) triples, for notebooks.

Agarwal & Nguyen compare each perturbation method X with X-G, the same method whose removed pixels
are filled by a generative inpainter; in kit that is the same attributor with the ``inpaint``
remover. Hyperparameters left out of ``params`` take the attributor's defaults, which are
resolved from the image size (:mod:`kit.defaults`: the 64×64 project values, the 224×224
reference values otherwise). ``reference`` records the paper's 224×224 settings beside them.

**The remover ladder.** Every perturbation method (SP, LIME, MP, MP2, RISE, KernelSHAP, FIDO)
comes in rungs that differ only by the remover (:data:`RUNG_OF`):

====  ==================================================  ==============================
rung  remover                                             names
====  ==================================================  ==============================
X     ``gray`` or ``blur`` (the paper's X)                 ``SP``, ``MP``, ...
G     ``inpaint``: the completion inpainter (paper's X-G)  ``SP-G``, ``MP-G``, ...
R     ``inpaint_removal``: the removal inpainter           ``SP-R``, ``MP-R``, ...
O     ``oracle``: the true background (world only)         ``SP-O``, ``MP-O``, ...
====  ==================================================  ==============================

FIDO has no X rung (the paper's FIDO-CA is already generative): ``FIDO-CA-SDR`` stays its G rung,
``FIDO-R-SDR`` and ``FIDO-O-SDR`` are its R and O rungs (likewise ``-SSR``). :func:`ladder`
derives the families from the registry (same attributor and parameters), :func:`pairs` the
(X, X-G) pairs. The O rung needs the batch's true backgrounds: ``explain(..., backgrounds=)``.
Its fill equals the image off the object, so its localisation leaks the object mask; compare
maps to it with :mod:`kit.metrics.agreement` instead.

Usage::

    from kit.attributors import METHODS, explain
    sal = explain("SP-G", model, x, target)          # sliding patch with the world inpainter
    sal_o = explain("SP-O", model, b.images, b.labels, backgrounds=b.backgrounds)
    ladder()["SP"]                                   # {"X": "SP", "G": "SP-G", "R": ..., "O": ...}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from kit.attributors.registry import get_attributor

__all__ = ["METHODS", "Method", "PROFILES", "RUNGS", "RUNG_OF", "budget", "explain", "ladder",
           "pairs", "rung", "rung_pairs", "GENERATIVE"]


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

def _rungs(base: str, attributor: str, remover: str, reference: str, params=None,
           names=None) -> dict[str, Method]:
    """The four rungs of one perturbation method (names: X, X-G, X-R, X-O unless given)."""
    params = dict(params or {})
    names = names or {"X": base, "G": f"{base}-G", "R": f"{base}-R", "O": f"{base}-O"}
    removers = {"X": remover, "G": "inpaint", "R": "inpaint_removal", "O": "oracle"}
    return {names[r]: Method(attributor, removers[r], dict(params), reference) for r in names}


def _fido(objective: str) -> dict[str, Method]:
    o = objective.upper()
    return _rungs("", "fido", "", _FIDO, {"objective": objective},
                  names={"G": f"FIDO-CA-{o}", "R": f"FIDO-R-{o}", "O": f"FIDO-O-{o}"})


METHODS: dict[str, Method] = {
    **_rungs("SP", "sliding_patch", "gray", _SP),
    **_rungs("LIME", "lime", "gray", _LIME),
    **_rungs("MP", "meaningful_perturbation", "blur", _MP),
    **_rungs("MP2", "mp2", "blur", _MP2),
    **_fido("sdr"),
    **_fido("ssr"),
    **_rungs("KernelSHAP", "kernel_shap", "gray", _SHAP),
    **_rungs("RISE", "rise", "gray", _RISE),
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
"""Remover names that make a method the paper's "X-G" (a generative completion fill)."""

RUNGS = ("X", "G", "R", "O")
"""The ladder's rungs, weakest fill first: X (gray/blur), G (completion inpainter), R (removal
inpainter), O (the true background)."""

RUNG_OF: dict[str, str] = {"inpaint": "G", "inpaint_removal": "R", "oracle": "O"}
"""Remover -> rung; any other remover of a perturbation method is the X rung."""


def rung(name: str) -> str | None:
    """The ladder rung of method ``name`` (``"X"``, ``"G"``, ``"R"``, ``"O"``), None for methods
    that remove nothing.

    Raises:
        ValueError: unknown method name (the message lists the valid ones).
    """
    if name not in METHODS:
        raise ValueError(f"name: unknown method {name!r}; valid names: {', '.join(METHODS)}")
    remover = METHODS[name].remover
    return None if remover is None else RUNG_OF.get(remover, "X")


def _families() -> dict[str, dict[str, str]]:
    """Every ladder of the registry: ``{base: {rung: name}}`` in registry order."""
    groups: dict[tuple, dict[str, str]] = {}
    for name, m in METHODS.items():
        r = rung(name)
        if r is None:
            continue
        rungs = groups.setdefault((m.attributor, repr(sorted(m.params.items()))), {})
        if r in rungs:
            raise ValueError(f"METHODS: {rungs[r]!r} and {name!r} are both rung {r} of one "
                             "method (same attributor and parameters)")
        rungs[r] = name
    out = {}
    for rungs in groups.values():
        # the X rung names the method; without one (FIDO), the name tokens all rungs share
        if "X" in rungs:
            base = rungs["X"]
        else:
            token_lists = [n.split("-") for n in rungs.values()]
            base = "-".join(t for t in token_lists[0] if all(t in ts for ts in token_lists[1:]))
        out[base] = {r: rungs[r] for r in RUNGS if r in rungs}
    return out


def ladder(methods=None) -> dict[str, dict[str, str]]:
    """The remover ladder of every perturbation method, derived from :data:`METHODS`.

    Methods with the same attributor and parameters form one family; each member's rung comes
    from its remover (:data:`RUNG_OF`). Nothing is hand-listed: adding ``"SP-R"`` to
    :data:`METHODS` adds it to SP's ladder.

    Args:
        methods: restrict to these method names (e.g. those present in a results table); rungs
            not among them are left out, families with none are dropped. None = all of
            :data:`METHODS`. Names that are not in :data:`METHODS` are ignored.

    Returns:
        ``{base: {rung: method name}}`` with rungs in :data:`RUNGS` order; ``base`` is the X
        rung's name (``"SP"``), or for a family without one the name tokens its rungs share
        (``"FIDO-SDR"`` for ``FIDO-CA-SDR``, ``FIDO-R-SDR``, ``FIDO-O-SDR``).
    """
    keep = None if methods is None else set(methods)
    out = {}
    for base, rungs in _families().items():
        sel = {r: n for r, n in rungs.items() if keep is None or n in keep}
        if sel:
            out[base] = sel
    return out


def pairs(methods=None) -> list[tuple[str, str]]:
    """The (X, X-G) pairs among ``methods`` (default: all of :data:`METHODS`), from the registry.

    X-G is the method with the same attributor and parameters as X whose remover is generative
    (:data:`GENERATIVE`) while X is the ladder's X rung (not X-R or X-O). Nothing is
    hand-listed: adding a method's X-G twin to :data:`METHODS` adds its pair to every table.
    """
    names = list(METHODS) if methods is None else [m for m in methods if m in METHODS]
    out = []
    for x in names:
        mx = METHODS[x]
        if rung(x) != "X":
            continue
        for g in names:
            mg = METHODS[g]
            if (mg.attributor == mx.attributor and mg.params == mx.params
                    and mg.remover in GENERATIVE):
                out.append((x, g))
    return out


def rung_pairs(methods=None, rungs: Sequence[str] = ("G", "R", "O")) -> list[tuple[str, str]]:
    """(X, X-<rung>) pairs of every ladder with an X rung, from the registry (:func:`ladder`).

    The comparisons that say which rung makes a claim hold: X vs X-G (the paper's, the same pairs
    as :func:`pairs`), X vs X-R (a fill that removes the object) and X vs X-O (the true
    background, the reference no real remover beats). Ordered rung by rung (every X vs X-G pair
    first), methods in registry order; families without an X rung (FIDO) have none.

    Args:
        methods: restrict to these names (None = all of :data:`METHODS`); unknown names are
            ignored, as in :func:`ladder`.
        rungs: which of ``"G"``, ``"R"``, ``"O"`` to pair with X.

    Raises:
        ValueError: a rung that is not one of ``"G"``, ``"R"``, ``"O"``.
    """
    bad = [r for r in rungs if r not in RUNGS[1:]]
    if bad:
        raise ValueError(f"rungs: unknown rung(s) {bad}; valid: {list(RUNGS[1:])}")
    lad = ladder(methods)
    return [(fam["X"], fam[r]) for r in rungs for fam in lad.values() if "X" in fam and r in fam]


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
        # reference 300; 50 failed the check (0.85 vs 200 on 16 images), 200 passed against 800
        # (0.98 on 4 images): docs/results/convergence.md
        **_family("meaningful_perturbation", {"iterations": 200}),
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
        # 2048 coalitions (the default) x 4 rungs dominated the smoke runs of every method
        **_family("kernel_shap", {"n_samples": 128}, {"n_samples": 64}),
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
        "SP-R": {"stride": 8, "local": True},
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


def explain(name: str, model, x, target, *, backgrounds=None, **overrides):
    """Run the method called ``name`` in :data:`METHODS`; ``overrides`` replace its parameters.

    Args:
        name: a :data:`METHODS` key.
        model: the classifier; x: ``(N,3,H,W)`` images in [0,1]; target: int or ``(N,)``.
        backgrounds: ``(N,3,H,W)`` true backgrounds aligned with ``x`` (world only, e.g.
            ``kit.world.sample(...).backgrounds``), needed by methods whose remover is built from
            them (the O rung, ``"oracle"``); ignored by the others and when ``overrides`` give
            a ``remover``.
        **overrides: the attributor's keywords (``seed``, ``stride``, ``remover``, ...).

    Returns:
        The attributor's ``(N,1,h,w)`` map, on ``x``'s device: a model elsewhere is copied there
        first (:func:`kit.models.on_device`), the removers' inpainters follow ``x`` too.

    Raises:
        ValueError: unknown method name (the message lists the valid ones); an O-rung method
            without ``backgrounds`` (the message says what to pass), or backgrounds whose shape
            is not ``x``'s.
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid names: {', '.join(METHODS)}")
    if isinstance(model, torch.nn.Module) and isinstance(x, torch.Tensor):
        from kit.models import on_device

        model = on_device(model, x.device)  # the input's device decides; the caller's stays
    m = METHODS[name]
    kwargs = dict(m.params)
    if m.remover is not None and "remover" not in overrides:
        from kit.removers import REMOVERS, get_remover

        if REMOVERS[m.remover].needs_backgrounds:
            if backgrounds is None:
                raise ValueError(
                    f"backgrounds: method {name!r} fills with remover {m.remover!r}, the true "
                    "background; pass backgrounds= (the true backgrounds aligned with x, e.g. "
                    "kit.world.sample(...).backgrounds; world only)")
            bg = torch.as_tensor(backgrounds)
            if tuple(bg.shape) != tuple(x.shape):
                raise ValueError(f"backgrounds: expected shape {tuple(x.shape)} (aligned with x), "
                                 f"got {tuple(bg.shape)}")
            kwargs["remover"] = get_remover(m.remover, model=model, size=tuple(x.shape[-2:]),
                                            backgrounds=bg.to(device=x.device, dtype=x.dtype))
        else:
            kwargs["remover"] = m.remover
    kwargs.update(overrides)
    return get_attributor(m.attributor)(model, x, target, **kwargs)
