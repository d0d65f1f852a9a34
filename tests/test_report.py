"""kit.report: summaries, paired X vs X-G comparisons, result files and the summary page."""

import numpy as np
import pandas as pd
import pytest

from kit import report


def _long(values: dict[str, list[float]], metric="m") -> pd.DataFrame:
    rows = [{"image": i, "method": k, "metric": metric, "value": v}
            for k, vs in values.items() for i, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_summarize_mean_ci_and_nan_dropping():
    df = _long({"SP": [1.0, 2.0, 3.0, np.nan], "SP-G": [5.0, 5.0, 5.0, 5.0]})
    s = report.summarize(df, {"m": True})
    sp = s[s.method == "SP"].iloc[0]
    assert sp["mean"] == pytest.approx(2.0) and sp["n"] == 3
    assert sp["ci_low"] <= 2.0 <= sp["ci_high"] and sp["ci_low"] >= 1.0 and sp["ci_high"] <= 3.0
    g = s[s.method == "SP-G"].iloc[0]
    assert (g["ci_low"], g["ci_high"]) == (5.0, 5.0) and bool(g["higher_is_better"])
    assert list(s.columns) == ["method", "metric", "mean", "ci_low", "ci_high", "n",
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
    assert p["ci_low"] == pytest.approx(0.1) and p["ci_high"] == pytest.approx(0.1)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="higher_is_better.*'m'"):
        report.summarize(_long({"SP": [1.0, 2.0]}), {"other": True})
    with pytest.raises(ValueError, match="per_image: missing column"):
        report.summarize(pd.DataFrame({"image": [0], "value": [1.0]}), {"m": True})
    with pytest.raises(TypeError, match="per_image"):
        report.compare_pairs([1, 2], {"m": True})


def test_save_results_and_summary_page(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    df = _long({"SP": [0.1, 0.2, 0.3, 0.4], "SP-G": [0.5, 0.6, 0.7, 0.9]}, metric="mass")
    hib = {"mass": True}
    written = report.save_results("02_localization", df, report.summarize(df, hib),
                                  report.compare_pairs(df, hib))
    assert {p.name for p in written} == {"02_localization.csv", "02_localization_per_image.csv",
                                         "02_localization_pairs.csv"}
    back = report.load_results("02_localization")
    pd.testing.assert_frame_equal(back["per_image"], df.reset_index(drop=True))
    fig = tmp_path / "figures" / "02_localization"
    fig.mkdir(parents=True)
    (fig / "bars.png").write_bytes(b"\x89PNG")
    (tmp_path / "results" / "run_times.csv").write_text(
        "notebook,params,seconds,status\n02_localization,params/02_localization.yaml,61.0,ok\n")
    out = report.write_summary()
    text = out.read_text()
    assert out == tmp_path / "results" / "summary.md"
    assert "## 02_localization" in text and "X-G wins 1, X wins 0, ties 0" in text
    assert "| SP | SP-G |" in text and "../figures/02_localization/bars.png" in text
    assert "mass (↑)" in text and "1.0 min" in text
    # A rerun without pairs removes the stale pairs file, and the headline disappears.
    report.save_results("02_localization", df, report.summarize(df, hib), None)
    assert not (tmp_path / "results" / "02_localization_pairs.csv").exists()
    assert "Headline" not in report.write_summary().read_text()


def test_wide_layout_for_bars():
    df = pd.concat([_long({"SP": [1.0, 2.0, 3.0], "SP-G": [2.0, 2.0, 2.0]}, metric="a"),
                    _long({"SP": [0.0, 1.0, 2.0], "SP-G": [5.0, 5.0, 5.0]}, metric="b")])
    s = report.summarize(df, {"a": True, "b": False})
    w = report.wide(s)
    assert list(w.index) == ["SP", "SP-G"]
    assert list(w.columns) == ["a", "a_lo", "a_hi", "b", "b_lo", "b_hi"]
    assert w.loc["SP", "a"] == pytest.approx(2.0) and w.loc["SP-G", "b_lo"] == 5.0


def test_summary_page_has_one_section_per_notebook(tmp_path, monkeypatch):
    # Auxiliary tables (e.g. 04's `_sam` table: metric and mean but no CIs) belong to their
    # notebook's section and must neither get a section of their own nor break the page.
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    df = _long({"SP": [0.1, 0.2, 0.3], "SP-G": [0.4, 0.5, 0.6]}, metric="ssim")
    report.save_results("04_sam_sensitivity", df, report.summarize(df, {"ssim": True}),
                        report.compare_pairs(df, {"ssim": True}))
    res = tmp_path / "results"
    pd.DataFrame({"method": ["SP"], "metric": ["ssim"], "mean": [0.5]}).to_csv(
        res / "04_sam_sensitivity_sam.csv", index=False)
    pd.DataFrame({"method": ["SP"], "threshold": [0.3]}).to_csv(
        res / "04_sam_sensitivity_thresholds.csv", index=False)
    # a notebook whose only table carries means without CIs still gets its methods table
    pd.DataFrame({"method": ["gray", "inpaint"], "metric": ["fd", "fd"], "mean": [2.0, 0.5]}).to_csv(
        res / "05_other.csv", index=False)
    text = report.write_summary().read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["## 04_sam_sensitivity", "## 05_other"]
    assert "ssim (↑)" in text and "| inpaint | 0.500 |" in text and "| fd |" in text


def test_headline_counts_pooled_rows_once(tmp_path, monkeypatch):
    # 04 writes one pair row per swept hyperparameter and a pooled "all" row; the headline counts
    # each method pair once (pooled), the tables keep every row.
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    df = pd.concat([_long({"SP": [0.1, 0.2, 0.3], "SP-G": [0.4, 0.5, 0.6]}).assign(param=p)
                    for p in ("window", "all")], ignore_index=True)
    hib = {"m": True}
    report.save_results("04_sam_sensitivity", df, report.summarize(df, hib, by=("method", "param")),
                        report.compare_pairs(df, hib))
    text = report.write_summary().read_text()
    assert "Over 1 paired X vs X-G comparisons" in text and "X-G wins 1" in text
    assert "| window | m |" in text and "| all | m |" in text


def test_headline_keeps_non_twin_pairs_apart(tmp_path, monkeypatch):
    # FIDO-CA-SSR vs FIDO-CA-SDR compares two generative objectives: not part of the X vs X-G count
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    df = _long({"SP": [0.1, 0.2, 0.3], "SP-G": [0.4, 0.5, 0.6],
                "FIDO-CA-SSR": [0.9, 0.8, 0.7], "FIDO-CA-SDR": [0.1, 0.2, 0.1]})
    hib = {"m": True}
    report.save_results("03_deletion", df, report.summarize(df, hib), report.compare_pairs(df, hib))
    text = report.write_summary().read_text()
    assert "Over 1 paired X vs X-G comparisons" in text and "X-G wins 1, X wins 0" in text
    assert "FIDO-CA-SSR vs FIDO-CA-SDR (not an X vs X-G pair), over 1: FIDO-CA-SDR wins 0, " \
           "FIDO-CA-SSR wins 1" in text
