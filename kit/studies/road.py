"""ROAD: remove the ranked pixels, fill them by noisy linear imputation, test without retraining.

Rong, Leemann, Borisov, Kasneci & Kasneci, *A Consistent and Efficient Evaluation Strategy for
Attribution Methods* (ICML 2022, arXiv 2202.00449; code ``tleemann/road_evaluation``). ROAR
(:mod:`kit.studies.roar`) retrains because a classifier sees the removal pattern, not only the
missing information: a gray silhouette of the removed pixels can itself reveal the class (the mask
leak). ROAD removes that leak with a fill that carries no trace of the mask shape, the **noisy
linear imputation** (:class:`kit.removers.NoisyLinear`, remover ``"noisy_linear"``: every
removed pixel the weighted mean of its 8 neighbours, one sparse linear system per image, plus
N(0, 0.01²) noise), and then tests the **unchanged** classifier, which makes the whole grid cost
seconds instead of hundreds of retrainings.

* **MoRF** (most relevant first): the top fraction ``t`` of the pixels is removed. Better
  estimator = **lower** accuracy (the matched ROAR cell).
* **LeRF** (least relevant first): the bottom fraction ``t`` is removed, i.e. the top ``1 - t``
  kept. Better estimator = **higher** accuracy (the matched KAR cell: KAR keeps the top, as LeRF
  does; at equal ``t`` KAR keeps ``t`` of the pixels and LeRF ``1 - t``).

Per (estimator, order, fill, fraction) the table holds, per test image, whether the classifier's
top-1 class on the modified image is the true label and its probability of the true label:
:func:`summarize` gives the accuracy (and mean probability) with a bootstrap interval over images,
:func:`ranking` ranks the estimators, :func:`agreement_with_roar` compares with ROAR's ranking.

Project choices (documented where they are made):

* **Ranking** as ROAR's, so that the two rankings are comparable: maps at pixel level
  (:func:`kit.studies.roar.estimator_maps`), scored by :func:`kit.studies.roar.ranking_scores`
  (squared, min-max rescaled: magnitude, not sign; ROAD ranks by the signed value) and ranked by
  :func:`kit.masks.pixel_rank`, the ranker behind :func:`kit.masks.top_fraction` (ties in raster
  order). Both orders remove exactly :func:`kit.masks.top_count` ``(t, H*W)`` pixels: MoRF the
  ``k`` first-ranked, LeRF the ``k`` last-ranked (so among tied pixels LeRF removes the last in
  raster order).
* **Fills**: ``"noisy_linear"`` (ROAD's) or any :mod:`kit.removers` name (``gray``,
  ``inpaint``, ``inpaint_removal``, ...; ``oracle``/``blend`` with ``backgrounds=``). The noisy
  linear fill's noise is seeded by ``seed`` (and each image's bytes and hole).
* **No quantisation**: modified images go to the classifier as float (ROAR stores 8-bit data
  sets because it retrains on them; ROAD never stores them).
* **Cache**: each cell's per-image results are cached in :mod:`kit.cache` (namespace ``"road"``,
  atomic checksummed writes), keyed by the fill (its repr: options and seed), the order and
  fraction, the exact bytes of the images, labels and removal masks, the classifier's weights, the
  shipped files the fill depends on and the code of this module, the removers and the models.
  An interrupted run resumes cell by cell.

Usage::

    from kit.studies import road, roar
    maps = roar.estimator_maps(["random", "Saliency", "SP"], clf, x)
    table = road.run_road(clf, x, y, estimators=list(maps), maps=maps)
    road.summarize(table)                       # accuracy per estimator, order, fill, fraction
    ranks = road.ranking(table)                 # per order and fill, with beats_random
    road.agreement_with_roar(ranks, roar.ranking(roar_table))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from kit import cache as disk
from kit import checks
from kit.engine import BATCH_SIZE, model_input
from kit.masks import pixel_rank, top_count
from kit.studies import roar

__all__ = [
    "FRACTIONS",
    "ORDERS",
    "FILLS",
    "HIGHER_IS_BETTER",
    "MATCHED_ROAR_MODE",
    "NAMESPACE",
    "keep_mask",
    "run_road",
    "summarize",
    "ranking",
    "agreement_with_roar",
]

FRACTIONS = roar.FRACTIONS
"""Fractions of pixels removed, ROAR's (0.1, 0.3, 0.5, 0.7, 0.9)."""

ORDERS = ("morf", "lerf")
"""``morf`` removes the most relevant fraction first, ``lerf`` the least relevant."""

FILLS = ("noisy_linear",)
"""Default fill: ROAD's noisy linear imputation."""

HIGHER_IS_BETTER = {"morf": False, "lerf": True}
"""Direction of accuracy as an estimator score, per order."""

MATCHED_ROAR_MODE = {"morf": "roar", "lerf": "kar"}
"""The ROAR mode each ROAD order is compared with (:func:`agreement_with_roar`)."""

NAMESPACE = "road"
"""The :mod:`kit.cache` namespace of the per-cell results."""

# kit sources a cached cell depends on (with the torch version): the masks are hashed as tensors,
# so the ranking code is not among them
_SOURCES = ("studies/road.py", "removers.py", "models")
# removers that cannot be built from a name alone
_NOT_BY_NAME = ("precomputed", "cached")

_COLUMNS = ["estimator", "order", "fill", "fraction", "image", "label", "correct", "prob"]


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------


def _check_estimators(estimators) -> list[str]:
    from kit.attributors import METHODS

    if isinstance(estimators, str) or not isinstance(estimators, Sequence) or not estimators:
        raise ValueError(f"estimators must be a non-empty list of names, got {estimators!r}")
    for e in estimators:
        checks.choice("estimators", e, METHODS, "estimator")
    if len(set(estimators)) != len(estimators):
        raise ValueError(f"estimators: duplicate names in {list(estimators)}")
    return list(estimators)


def _valid_fills() -> list[str]:
    from kit.removers import REMOVERS

    return [r for r in REMOVERS if r not in _NOT_BY_NAME]


def _check_order(order) -> str:
    return checks.choice("orders", order, ORDERS, "order")


def _check_fraction(f) -> float:
    return checks.fraction("fractions", f)  # open interval: 0 and 1 remove nothing / everything


def _check_labels(y, n: int) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.shape != (n,):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"labels must be an integer tensor of shape ({n},), got {shape}")
    return y.long().cpu()


def _images(x) -> torch.Tensor:
    """uint8 or float [0,1] images -> float32 pixel space on the CPU."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"images must be a (N,3,H,W) tensor, got {tuple(x.shape)}")
        return x.float() / 255
    return checks.images("images", x).float().cpu()


# ----------------------------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------------------------


def keep_mask(sal: torch.Tensor, fraction: float, order: str) -> torch.Tensor:
    """Keep-mask (1 = keep) of MoRF (the top fraction removed) or LeRF (the bottom one removed).

    Pixels are ranked by :func:`kit.studies.roar.ranking_scores` with :func:`kit.masks.pixel_rank`
    (ties in raster order); ``k = top_count(fraction, H*W)`` pixels are removed in both orders:
    the ``k`` first-ranked (MoRF, the same mask as ROAR's) or the ``k`` last-ranked (LeRF).

    Args:
        sal: ``(N,1,H,W)`` maps at image resolution.
        fraction: fraction of pixels removed, in (0, 1).
        order: ``"morf"`` or ``"lerf"``.

    Returns:
        ``(N,1,H,W)`` float32 keep-mask in {0,1} with exactly ``H*W - k`` ones per map.
    """
    order = _check_order(order)
    fraction = _check_fraction(fraction)
    return _keep_from_rank(_rank(sal), fraction, order).view(sal.shape)


def _rank(sal: torch.Tensor) -> torch.Tensor:
    """``(N, H*W)`` rank of every pixel, 0 = most relevant (ROAR's scores, kit's one ranker)."""
    return pixel_rank(roar.ranking_scores(sal))


def _keep_from_rank(rank: torch.Tensor, fraction: float, order: str) -> torch.Tensor:
    """``(N, H*W)`` float32 keep-mask removing the k first- (MoRF) or last-ranked (LeRF)."""
    total = rank.shape[1]
    k = top_count(fraction, total)
    removed = rank < k if order == "morf" else rank >= total - k
    return (~removed).to(torch.float32)


# ----------------------------------------------------------------------------------------------
# the experiment
# ----------------------------------------------------------------------------------------------


def _evaluate(model, x, y, keep, remover, batch_size) -> tuple[np.ndarray, np.ndarray]:
    """Per image: is the top-1 class on the modified image the label; p(label)."""
    correct, prob = [], []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch_size):
            xi = x[i:i + batch_size]
            if keep is not None:  # take: fills built from per-image data (the oracle) follow
                part = remover.take(torch.arange(i, i + xi.shape[0]))
                xi = part(xi, keep[i:i + batch_size])
            logits = model(model_input(xi)).float()  # channels-last on the CPU: faster
            yi = y[i:i + batch_size].to(logits.device)
            correct.append((logits.argmax(1) == yi).cpu())
            prob.append(torch.softmax(logits, 1).gather(1, yi[:, None])[:, 0].cpu())
    return torch.cat(correct).numpy(), torch.cat(prob).double().numpy()


def _rows(estimator, order, fill, fraction, y, correct, prob) -> pd.DataFrame:
    n = y.shape[0]
    return pd.DataFrame({
        "estimator": [estimator] * n, "order": [order] * n, "fill": [fill] * n,
        "fraction": np.full(n, float(fraction)), "image": np.arange(n),
        "label": y.numpy(), "correct": correct.astype(bool), "prob": prob,
    })


def run_road(
    model,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    estimators: Sequence[str],
    maps: Mapping[str, torch.Tensor] | None = None,
    fractions: Sequence[float] = FRACTIONS,
    orders: Sequence[str] = ORDERS,
    fills: Sequence[str] = FILLS,
    profile: str = roar.PROFILE,
    seed: int = 0,
    batch_size: int = BATCH_SIZE,
    backgrounds: torch.Tensor | None = None,
    progress: bool = False,
    cache: bool = True,
) -> pd.DataFrame:
    """ROAD: the unchanged classifier on the images with each estimator's ranked pixels removed.

    For every fill, estimator, order and fraction the removal mask (:func:`keep_mask`) of every
    image is filled by the remover and the classifier tested on the result; one extra pass on the
    unmodified images gives the reference rows (``estimator = order = fill = "none"``,
    ``fraction = 0``).

    Args:
        model: the classifier (pixel-space input -> logits), not retrained.
        images: ``(N,3,H,W)`` test images, float in [0,1] or uint8.
        labels: ``(N,)`` ground-truth classes.
        estimators: :data:`kit.attributors.METHODS` names (``"random"`` for ``beats_random``).
        maps: precomputed ``{name: (N,1,H,W)}`` maps at image resolution (as
            :func:`kit.studies.roar.estimator_maps` returns them); missing ones are computed with
            it (``profile``, ``seed``, ``cache``), explaining the model's predicted classes.
        fractions: fractions of pixels removed, each in (0, 1).
        orders: subset of :data:`ORDERS`.
        fills: remover names (:data:`kit.removers.REMOVERS` less ``precomputed``/``cached``);
            ``"noisy_linear"`` is ROAD's.
        profile: budget of computed maps (:data:`kit.attributors.PROFILES`).
        seed: seed of computed maps (random map, SmoothGrad noise) and of the fills that take
            one (the noisy linear imputation's noise, ``noise``'s).
        batch_size: images per remover and classifier call.
        backgrounds: ``(N,3,H,W)`` true backgrounds, for the ``oracle``/``blend`` fills only.
        progress: tqdm bar over the cells.
        cache: reuse/store each cell's results (and computed maps) on disk.

    Returns:
        Long DataFrame, one row per image and cell: ``estimator, order, fill, fraction, image,
        label, correct, prob`` (``correct``: the top-1 class is ``label``; ``prob``: the
        softmax probability of ``label``). Accuracy per cell: :func:`summarize`.

    Raises:
        ValueError: unknown estimator, order or fill (the message lists the valid names), a
            fraction outside (0, 1), maps or labels of the wrong shape.
    """
    from kit.removers import REMOVERS, get_remover, remover_files

    estimators = _check_estimators(estimators)
    fractions = [_check_fraction(f) for f in fractions]
    orders = [_check_order(o) for o in orders]
    if not fractions or not orders or isinstance(fills, str) or not fills:
        raise ValueError("fractions, orders and fills must be non-empty lists")
    valid = _valid_fills()
    for f in fills:
        checks.choice("fills", f, valid, "fill")
    seed = checks.seed("seed", seed)
    batch_size = checks.positive_int("batch_size", batch_size)
    checks.boolean("progress", progress)
    checks.boolean("cache", cache)
    x = _images(images)
    y = _check_labels(labels, x.shape[0])
    n, size = x.shape[0], tuple(x.shape[-2:])

    removers = {}
    for f in fills:
        opts = {"seed": seed} if "seed" in REMOVERS[f].__dataclass_fields__ else {}
        removers[f] = get_remover(f, model=model, size=size, backgrounds=backgrounds, **opts)

    maps = dict(maps or {})
    for name, sal in maps.items():
        checks.maps(f"maps[{name!r}]", sal, n)
        if tuple(sal.shape[-2:]) != size:
            raise ValueError(f"maps[{name!r}] must be at the images' resolution {size}, got "
                             f"{tuple(sal.shape[-2:])} (use roar.estimator_maps)")
    missing = [e for e in estimators if e not in maps]
    if missing:
        maps.update(roar.estimator_maps(missing, model, x, profile=profile, seed=seed,
                                        cache=cache))

    base = None
    if cache:
        base = (disk.digest(x), disk.digest(y), disk.model_digest(model),
                disk.code_digest(*_SOURCES))

    correct, prob = _evaluate(model, x, y, None, None, batch_size)
    parts = [_rows("none", "none", "none", 0.0, y, correct, prob)]
    cells = [(f, e, o, t) for f in fills for e in estimators for o in orders for t in fractions]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells), desc="ROAD cells")
    ranks: dict[str, torch.Tensor] = {}  # one ranking per estimator, not per cell
    for fill, est, order, frac in cells:
        if est not in ranks:
            ranks[est] = _rank(maps[est])
        keep = _keep_from_rank(ranks[est], frac, order).view(n, 1, *size)
        remover = removers[fill]
        path = None
        if base is not None:
            files = tuple(disk.file_digest(p) for p in remover_files(fill))
            key = disk.digest(*base, fill, repr(remover), files, order, frac,
                              keep.to(torch.bool), backgrounds if remover.needs_backgrounds
                              else "no backgrounds")
            path = disk.path(NAMESPACE, f"cells/{fill}-{order}-{key}.pt")
            rec = disk.read(path)
            if isinstance(rec, dict) and {"correct", "prob"} <= set(rec) \
                    and rec["correct"].shape == (n,):
                parts.append(_rows(est, order, fill, frac, y, rec["correct"].numpy(),
                                   rec["prob"].numpy()))
                if bar is not None:
                    bar.update()
                continue
        correct, prob = _evaluate(model, x, y, keep, remover, batch_size)
        if path is not None:
            disk.write({"correct": torch.from_numpy(correct), "prob": torch.from_numpy(prob)},
                       path)
        parts.append(_rows(est, order, fill, frac, y, correct, prob))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return pd.concat(parts, ignore_index=True)[_COLUMNS]


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------


def _check_table(table) -> None:
    cols = set(_COLUMNS)
    if not isinstance(table, pd.DataFrame) or not cols <= set(table.columns):
        got = list(table.columns) if isinstance(table, pd.DataFrame) else type(table).__name__
        raise ValueError(
            f"table must be a run_road DataFrame with columns {sorted(cols)}, got {got}")


def summarize(table: pd.DataFrame, *, confidence: float = 0.95, n_resamples: int = 2000,
              seed: int = 0) -> pd.DataFrame:
    """Accuracy (and mean probability of the true class) per cell, with intervals over images.

    Args:
        table: a :func:`run_road` table.
        confidence: coverage of the percentile-bootstrap intervals over images
            (:func:`kit.metrics.stats.bootstrap_ci`).
        n_resamples, seed: bootstrap resamples and their seed.

    Returns:
        Columns ``estimator, order, fill, fraction, accuracy, ci_low, ci_high, prob, n,
        higher_is_better`` (None for the unmodified reference rows), in the table's order.
    """
    from kit.metrics.stats import bootstrap_ci

    _check_table(table)
    rows = []
    keys = ["estimator", "order", "fill", "fraction"]
    for key, g in table.groupby(keys, sort=False):
        v = g["correct"].to_numpy(np.float64)
        lo, hi = bootstrap_ci(v, confidence=confidence, n_resamples=n_resamples, seed=seed)
        rows.append({**dict(zip(keys, key, strict=True)), "accuracy": float(v.mean()),
                     "ci_low": lo, "ci_high": hi, "prob": float(g["prob"].mean()),
                     "n": int(v.size), "higher_is_better": HIGHER_IS_BETTER.get(key[1])})
    return pd.DataFrame(rows)


def ranking(table: pd.DataFrame, *, metric: str = "accuracy", confidence: float = 0.95,
            n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Rank the estimators per (order, fill) by their mean accuracy over the fractions.

    An estimator's per-image score is its correctness (``metric="accuracy"``; or the probability
    of the true class, ``"prob"``) averaged over the fractions; its score is the mean over
    images, i.e. its accuracy averaged over the fractions (the area under its accuracy curve up
    to the spacing). MoRF ranks the lowest score first, LeRF the highest (ties share the better
    rank, as :func:`kit.studies.roar.ranking`). **``beats_random``** uses a *paired percentile
    bootstrap over images*: the per-image difference of scores to ``random`` on the same image
    (same test images, same fill), resampled over images
    (:func:`kit.metrics.stats.bootstrap_ci`); the interval must exclude 0 on the estimator's
    better side. (ROAR's intervals are over retraining seeds; ROAD has no seeds to resample,
    its variation is over images.)

    Returns:
        Columns ``order, fill, estimator, rank, score, ci_low, ci_high, diff_vs_random,
        diff_ci_low, diff_ci_high, beats_random, n`` (``n``: images), sorted by order, fill and
        rank; ``diff_*`` NaN and ``beats_random`` False for ``random`` itself and when it was not
        run.
    """
    from kit.metrics.stats import bootstrap_ci

    _check_table(table)
    checks.choice("metric", metric, ("accuracy", "prob"))
    col = "correct" if metric == "accuracy" else "prob"
    t = table[table["order"].isin(ORDERS)].assign(_v=lambda d: d[col].astype(np.float64))
    per_image = t.groupby(["order", "fill", "estimator", "image"], sort=False)["_v"].mean()
    kw = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
    rows = []
    for (order, fill), g in per_image.groupby(level=["order", "fill"], sort=False):
        scores = g.droplevel(["order", "fill"]).unstack("image")  # estimator x image
        rnd = scores.loc["random"] if "random" in scores.index else None
        sign = 1.0 if HIGHER_IS_BETTER[order] else -1.0
        means = scores.mean(axis=1)
        rank = (-sign * means).rank(method="min")
        for est, row in scores.iterrows():
            v = row.dropna().to_numpy(np.float64)
            lo, hi = bootstrap_ci(v, **kw)
            rec = dict(order=order, fill=fill, estimator=est, rank=int(rank[est]),
                       score=float(v.mean()), ci_low=lo, ci_high=hi, diff_vs_random=np.nan,
                       diff_ci_low=np.nan, diff_ci_high=np.nan, beats_random=False,
                       n=int(v.size))
            if rnd is not None and est != "random":
                d = (row - rnd).dropna().to_numpy(np.float64)
                dlo, dhi = bootstrap_ci(d, **kw)
                rec.update(diff_vs_random=float(d.mean()), diff_ci_low=dlo, diff_ci_high=dhi,
                           beats_random=bool(dlo > 0 if sign > 0 else dhi < 0))
            rows.append(rec)
    out = pd.DataFrame(rows)
    return out.sort_values(["order", "fill", "rank"], kind="stable").reset_index(drop=True)


def agreement_with_roar(road_ranks: pd.DataFrame, roar_ranks: pd.DataFrame) -> pd.DataFrame:
    """Do ROAD and ROAR rank the estimators alike? Per matched cell (MoRF vs ROAR, LeRF vs KAR)
    and every pair of fills, the rank correlations of the scores on the shared estimators.

    Within a matched pair both scores point the same way (MoRF and ROAR: lower accuracy is
    better; LeRF and KAR: higher), so a positive correlation is agreement.

    Args:
        road_ranks: a :func:`ranking` table (columns ``order, fill, estimator, score``).
        roar_ranks: a :func:`kit.studies.roar.ranking` table (``mode, fill, estimator, score``).

    Returns:
        Columns ``order, mode, road_fill, roar_fill, n_estimators, spearman, kendall,
        same_best, best_road, best_roar`` (correlations NaN below 3 shared estimators); a pair
        of cells with no shared estimator is left out.
    """
    from scipy import stats

    for name, t, cols in (("road_ranks", road_ranks, {"order", "fill", "estimator", "score"}),
                          ("roar_ranks", roar_ranks, {"mode", "fill", "estimator", "score"})):
        if not isinstance(t, pd.DataFrame) or not cols <= set(t.columns):
            got = list(t.columns) if isinstance(t, pd.DataFrame) else type(t).__name__
            raise ValueError(f"{name} must be a ranking table with columns {sorted(cols)}, "
                             f"got {got}")
    rows = []
    for order, mode in MATCHED_ROAR_MODE.items():
        a_all = road_ranks[road_ranks["order"] == order]
        b_all = roar_ranks[roar_ranks["mode"] == mode]
        for fa, ga in a_all.groupby("fill", sort=False):
            for fb, gb in b_all.groupby("fill", sort=False):
                sa = ga.set_index("estimator")["score"]
                sb = gb.set_index("estimator")["score"]
                common = [e for e in sa.index if e in sb.index]
                if not common:
                    continue
                va, vb = sa[common].to_numpy(np.float64), sb[common].to_numpy(np.float64)
                if len(common) >= 3:
                    rho = float(stats.spearmanr(va, vb).statistic)
                    tau = float(stats.kendalltau(va, vb).statistic)
                else:
                    rho = tau = float("nan")
                pick = np.argmax if HIGHER_IS_BETTER[order] else np.argmin
                best_a, best_b = common[int(pick(va))], common[int(pick(vb))]
                rows.append(dict(order=order, mode=mode, road_fill=fa, roar_fill=fb,
                                 n_estimators=len(common), spearman=rho, kendall=tau,
                                 same_best=best_a == best_b, best_road=best_a,
                                 best_roar=best_b))
    return pd.DataFrame(rows, columns=["order", "mode", "road_fill", "roar_fill", "n_estimators",
                                       "spearman", "kendall", "same_best", "best_road",
                                       "best_roar"])
