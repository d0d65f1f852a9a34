"""kit.report: summaries, paired X vs X-G comparisons and result files (the summary page:
tests/test_summary.py)."""

import numpy as np
import pandas as pd
import pytest

from kit import report


def _long(values: dict[str, list[float]], metric="m") -> pd.DataFrame:
    rows = [{"image": i, "method": k, "metric": metric, "value": v}
            for k, vs in values.items() for i, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_summarize_mean_ci_and_nan_counted():
    df = _long({"SP": [1.0, 2.0, 3.0, np.nan], "SP-G": [5.0, 5.0, 5.0, 5.0]})
    s = report.summarize(df, {"m": True})
    sp = s[s.method == "SP"].iloc[0]
    assert sp["mean"] == pytest.approx(2.0) and sp["n"] == 3 and sp["n_nan"] == 1
    assert sp["ci_low"] <= 2.0 <= sp["ci_high"] and sp["ci_low"] >= 1.0 and sp["ci_high"] <= 3.0
    g = s[s.method == "SP-G"].iloc[0]
    assert (g["ci_low"], g["ci_high"]) == (5.0, 5.0) and bool(g["higher_is_better"])
    assert g["n_nan"] == 0
    assert list(s.columns) == ["method", "metric", "mean", "ci_low", "ci_high", "n", "n_nan",
                               "higher_is_better"]


def test_summarize_is_deterministic_and_groups_by_extra_columns():
    rng = np.random.default_rng(0)
    df = _long({"SP": list(rng.normal(size=30))}).assign(remover="gray")
    df = pd.concat([df, df.assign(remover="blur", value=df.value + 1)])
    a = report.summarize(df, {"m": False}, by=("method", "remover"), seed=3)
    b = report.summarize(df, {"m": False}, by=("method", "remover"), seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.remover) == ["gray", "blur"]
    assert a["mean"].iloc[1] - a["mean"].iloc[0] == pytest.approx(1.0)


@pytest.mark.parametrize("higher,expected", [(True, "X-G"), (False, "X")])
def test_compare_pairs_winner_follows_direction(higher, expected):
    x = np.linspace(0, 1, 40)
    df = _long({"SP": list(x), "SP-G": list(x + 0.5), "MP": list(x), "MP-G": list(x)})
    p = report.compare_pairs(df, {"m": higher})
    sp = p[p.x == "SP"].iloc[0]
    assert sp["diff"] == pytest.approx(0.5) and sp["winner"] == expected
    assert sp["frac_x_g_better"] == (1.0 if higher else 0.0)
    mp = p[p.x == "MP"].iloc[0]
    assert mp["winner"] == "tie" and mp["diff"] == 0
    assert set(p.x) == {"SP", "MP"}  # absent pairs are skipped


def test_compare_pairs_is_paired_over_common_images():
    # X-G is better on every image by 0.1 although the image effects (±10) swamp it unpaired.
    base = np.repeat([-10.0, 10.0], 10)
    df = _long({"LIME": list(base), "LIME-G": list(base + 0.1)})
    df = df[~((df.method == "LIME-G") & (df.image == 0))]  # one image missing on one side
    p = report.compare_pairs(df, {"m": True}).iloc[0]
    assert p["n"] == 19 and p["winner"] == "X-G"
    assert p["n_nan"] == 1  # the unpaired image is counted, not dropped silently
    assert p["ci_low"] == pytest.approx(0.1) and p["ci_high"] == pytest.approx(0.1)


def test_compare_pairs_counts_nan_values():
    df = _long({"LIME": [0.1, float("nan"), 0.3, 0.4], "LIME-G": [0.2, 0.3, float("nan"), 0.5]})
    p = report.compare_pairs(df, {"m": True}).iloc[0]
    assert p["n"] == 2 and p["n_nan"] == 2


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="higher_is_better.*'m'"):
        report.summarize(_long({"SP": [1.0, 2.0]}), {"other": True})
    with pytest.raises(ValueError, match="per_image: missing column"):
        report.summarize(pd.DataFrame({"image": [0], "value": [1.0]}), {"m": True})
    with pytest.raises(TypeError, match="per_image"):
        report.compare_pairs([1, 2], {"m": True})


def test_save_results_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    df = _long({"SP": [0.1, 0.2, 0.3, 0.4], "SP-G": [0.5, 0.6, 0.7, 0.9]}, metric="mass")
    hib = {"mass": True}
    written = report.save_results("02_localization", df, report.summarize(df, hib),
                                  report.compare_pairs(df, hib))
    assert {p.name for p in written} == {"02_localization.csv", "02_localization_per_image.csv",
                                         "02_localization_pairs.csv"}
    back = report.load_results("02_localization")
    pd.testing.assert_frame_equal(back["per_image"], df.reset_index(drop=True))
    # A rerun without pairs removes the stale pairs file.
    report.save_results("02_localization", df, report.summarize(df, hib), None)
    assert not (tmp_path / "results" / "02_localization_pairs.csv").exists()


def test_pairs_are_derived_from_methods():
    from kit.attributors.methods import pairs

    assert report.PAIRS == pairs()
    assert ("RISE", "RISE-G") in report.PAIRS and ("SP", "SP-G") in report.PAIRS
    assert report.FIDO_OBJECTIVES not in report.PAIRS  # both objectives inpaint: not a twin pair
    assert report.COMPARISONS == [*report.RUNG_PAIRS, report.FIDO_OBJECTIVES]
    assert report.RUNG_PAIRS[:len(report.PAIRS)] == report.PAIRS  # X vs X-G first
    assert {report.pair_rung(x, y) for x, y in report.RUNG_PAIRS} == {"G", "R", "O"}
    assert report.pair_rung(*report.FIDO_OBJECTIVES) == ""


def test_wide_layout_for_bars():
    df = pd.concat([_long({"SP": [1.0, 2.0, 3.0], "SP-G": [2.0, 2.0, 2.0]}, metric="a"),
                    _long({"SP": [0.0, 1.0, 2.0], "SP-G": [5.0, 5.0, 5.0]}, metric="b")])
    s = report.summarize(df, {"a": True, "b": False})
    w = report.wide(s)
    assert list(w.index) == ["SP", "SP-G"]
    assert list(w.columns) == ["a", "a_lo", "a_hi", "b", "b_lo", "b_hi"]
    assert w.loc["SP", "a"] == pytest.approx(2.0) and w.loc["SP-G", "b_lo"] == 5.0


def test_verdict_agreement_matches_comparisons_by_their_keys_through_a_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"image": i, "remover": r, "method": m, "metric": "auc",
             "value": rng.normal() + (1.0 if m == "SP-G" and r == "gray" else 0.0)}
            for i in range(40) for r in ("gray", "blur") for m in ("SP", "SP-G", "MP", "MP-G")]
    full = report.compare_pairs(pd.DataFrame(rows), {"auc": True}, pairs=[("SP", "SP-G"),
                                                                         ("MP", "MP-G")])
    full.to_csv(tmp_path / "03_deletion_pairs.csv", index=False)
    reference = report.reference_pairs("03_deletion", tmp_path)
    # a smaller run: the first 12 images, SP only -> compared on its two (remover) comparisons
    small = report.compare_pairs(pd.DataFrame([r for r in rows if r["image"] < 12]),
                                 {"auc": True}, pairs=[("SP", "SP-G")])
    agreement = report.verdict_agreement(small, reference)
    assert len(agreement) == 2 and set(agreement["remover"]) == {"gray", "blur"}
    assert (agreement["winner_reference"] == full.query("x == 'SP'")["winner"].to_numpy()).all()
    assert report.verdict_agreement(full, reference)["agree"].all()
    flipped = reference.assign(winner=reference["winner"].map({"X": "X-G", "X-G": "X",
                                                               "tie": "X"}))
    assert not report.verdict_agreement(full, flipped)["agree"].any()
    assert report.reference_pairs("nope", tmp_path) is None
    with pytest.raises(ValueError, match="reference must be a compare_pairs table"):
        report.verdict_agreement(full, full.drop(columns="winner"))


def test_teach_check_prints_the_agreement_and_returns_the_crosstab(tmp_path, capsys):
    rng = np.random.default_rng(1)
    rows = [{"image": i, "remover": r, "method": m, "metric": "auc",
             "value": rng.normal() + (2.0 if m == "SP-G" and r == "gray" else 0.0)}
            for i in range(40) for r in ("gray", "blur") for m in ("SP", "SP-G")]
    full = report.compare_pairs(pd.DataFrame(rows), {"auc": True}, pairs=[("SP", "SP-G")])
    # the reference disagrees on the blur comparison only
    reference = full.assign(winner=np.where(full["remover"] == "blur", "X", full["winner"]))
    reference.to_csv(tmp_path / "03_deletion_pairs.csv", index=False)
    table = report.teach_check("03_deletion", full, tmp_path)
    agree = (full["winner"] == reference["winner"]).mean()
    assert capsys.readouterr().out == (f"verdicts agreeing with make run's: {agree:.0%} of 2 "
                                       "comparisons\n")
    assert table.to_numpy().sum() == 2 and table.index.name == "winner_reference"
    assert table.loc["X-G", "X-G"] == 1 and "X" in table.index
    assert report.teach_check("nope", full, tmp_path) is None
    assert "no make-run verdicts for nope" in capsys.readouterr().out
