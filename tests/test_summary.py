"""tools/summary.py: the results/summary.md page assembled from the notebooks' result tables."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from kit import report

_SPEC = importlib.util.spec_from_file_location(
    "kit_tools_summary", Path(__file__).resolve().parent.parent / "tools" / "summary.py")
summary = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(summary)


def _long(values: dict[str, list[float]], metric="m") -> pd.DataFrame:
    rows = [{"image": i, "method": k, "metric": metric, "value": v}
            for k, vs in values.items() for i, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_summary_page(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    df = _long({"SP": [0.1, 0.2, 0.3, 0.4], "SP-G": [0.5, 0.6, 0.7, 0.9]}, metric="mass")
    hib = {"mass": True}
    # the tables the page is built from (their round trip is tested in tests/test_report.py)
    report.save_results("02_localization", df, report.summarize(df, hib),
                        report.compare_pairs(df, hib))
    fig = tmp_path / "figures" / "02_localization"
    fig.mkdir(parents=True)
    (fig / "bars.png").write_bytes(b"\x89PNG")
    (tmp_path / "results" / "run_times.csv").write_text(
        "notebook,params,seconds,status\n02_localization,params/02_localization.yaml,61.0,ok\n")
    out = summary.write_summary()
    text = out.read_text()
    assert out == tmp_path / "results" / "summary.md"
    assert "## 02_localization" in text and "X-G wins 1, X wins 0, ties 0" in text
    assert "| SP | X-G | SP-G |" in text and "../figures/02_localization/bars.png" in text
    assert "**X vs its rungs**" in text
    assert "mass (↑)" in text and "1.0 min" in text
    # A rerun without pairs removes the stale pairs file, and the headline disappears.
    report.save_results("02_localization", df, report.summarize(df, hib), None)
    assert not (tmp_path / "results" / "02_localization_pairs.csv").exists()
    assert "Headline" not in summary.write_summary().read_text()


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
    text = summary.write_summary().read_text()
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
    text = summary.write_summary().read_text()
    assert "Over 1 paired X vs X-G comparisons" in text and "X-G wins 1" in text
    assert "| window | m |" in text and "| all | m |" in text


def test_headline_keeps_non_twin_pairs_apart(tmp_path, monkeypatch):
    # FIDO-CA-SSR vs FIDO-CA-SDR compares two generative objectives: not part of the X vs X-G count
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    df = _long({"SP": [0.1, 0.2, 0.3], "SP-G": [0.4, 0.5, 0.6],
                "FIDO-CA-SSR": [0.9, 0.8, 0.7], "FIDO-CA-SDR": [0.1, 0.2, 0.1]})
    hib = {"m": True}
    report.save_results("03_deletion", df, report.summarize(df, hib), report.compare_pairs(df, hib))
    text = summary.write_summary().read_text()
    assert "Over 1 paired X vs X-G comparisons" in text and "X-G wins 1, X wins 0" in text
    assert "FIDO-CA-SSR vs FIDO-CA-SDR (not an X vs X-G pair), over 1: FIDO-CA-SDR wins 0, " \
           "FIDO-CA-SSR wins 1" in text
    assert "| FIDO-CA-SSR | – | FIDO-CA-SDR |" in text  # no rung: "–" in the pairs table


def test_headline_counts_the_pairs_derived_from_methods(tmp_path, monkeypatch):
    # RISE vs RISE-G comes from METHODS (no hand list): it is compared and counted as a twin pair.
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    df = _long({"RISE": [0.1, 0.2, 0.3], "RISE-G": [0.4, 0.5, 0.6]})
    hib = {"m": True}
    pairs = report.compare_pairs(df, hib)
    assert list(zip(pairs.x, pairs.x_g, strict=True)) == [("RISE", "RISE-G")]
    report.save_results("03_deletion", df, report.summarize(df, hib), pairs)
    text = summary.write_summary().read_text()
    assert "Over 1 paired X vs X-G comparisons" in text and "X-G wins 1, X wins 0" in text
    assert "not an X vs X-G pair" not in text


def test_summary_reads_as_a_ladder(tmp_path, monkeypatch):
    # rows = methods, columns = the rungs; an older table without X-R / X-O gets "–" there,
    # FIDO (no X rung in the paper) a row from its G rung on
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    monkeypatch.setattr(summary, "budget_limited_methods", lambda res=None: set())
    df = _long({"SP": [0.1, 0.2, 0.3], "SP-G": [0.4, 0.5, 0.6], "SP-R": [0.5, 0.6, 0.7],
                "SP-O": [0.7, 0.8, 0.9], "LIME": [0.1, 0.1, 0.2], "LIME-G": [0.3, 0.2, 0.2],
                "FIDO-CA-SDR": [0.2, 0.3, 0.4], "Saliency": [0.5, 0.5, 0.6]}, metric="mass")
    hib = {"mass": True}
    table = report.summarize(df, hib)
    report.save_results("02_localization", df, table, report.compare_pairs(df, hib))
    text = summary.write_summary().read_text()
    assert "**Ladder**" in text and "*mass (↑)*" in text
    assert "| method | X | X-G | X-R | X-O |" in text
    cell = {r.method: f"{r.mean:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
            for r in table.itertuples()}
    assert f"| SP | {cell['SP']} | {cell['SP-G']} | {cell['SP-R']} | {cell['SP-O']} |" in text
    assert f"| LIME | {cell['LIME']} | {cell['LIME-G']} | – | – |" in text
    assert f"| FIDO-SDR | – | {cell['FIDO-CA-SDR']} | – | – |" in text
    ladder_part = text[text.index("**Ladder**"):]
    assert "Saliency" not in ladder_part  # no ladder for methods that remove nothing


def test_ladder_flags_budget_limited_methods(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    df = _long({"MP2": [0.1, 0.2, 0.3], "MP2-G": [0.4, 0.5, 0.6]}).assign(remover="gray")
    hib = {"m": True}
    report.save_results("03_deletion", df, report.summarize(df, hib, by=("remover", "method")),
                        report.compare_pairs(df, hib))
    monkeypatch.setattr(summary, "budget_limited_methods", lambda res=None: {"MP2-G"})
    text = summary.write_summary().read_text()
    ladder_part = text[text.index("**Ladder**"):]
    rows = [line for line in ladder_part.splitlines() if line.startswith("| gray | MP2 |")]
    assert len(rows) == 1 and rows[0].count("(budget-limited)") == 1
    assert rows[0].split(" | ")[3].endswith("(budget-limited)")  # the X-G cell
    # the convergence table read from a run's results folder, tolerant of its absence
    monkeypatch.undo()
    pytest.importorskip("kit.studies.convergence")
    res = tmp_path / "results"
    pd.DataFrame({"method": ["MP2-G", "MP2"], "status": ["run", "run"],
                  "passed": [False, True]}).to_csv(res / "convergence.csv", index=False)
    assert summary.budget_limited_methods(res) == {"MP2-G"}
    assert summary.budget_limited_methods(tmp_path / "nowhere") == \
        summary.budget_limited_methods(None)  # falls back to the shipped table (or none)


def test_rungs_are_compared_and_claims_say_which_makes_them_hold(tmp_path, monkeypatch):
    # X vs X-G, X-R and X-O in one table; the headline counts each rung apart, and the claims
    # table says per notebook which rung wins: here G loses, R and O win (paired, 6 images)
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    base = [0.1, 0.2, 0.3, 0.4, 0.3, 0.2]
    df = _long({"SP": base, "SP-G": [v - 0.1 for v in base], "SP-R": [v + 0.1 for v in base],
                "SP-O": [v + 0.3 for v in base], "LIME": base,
                "LIME-R": [v + 0.05 * (-1) ** i for i, v in enumerate(base)]}, metric="mass")
    hib = {"mass": True}
    pairs = report.compare_pairs(df, hib)
    assert list(zip(pairs.x_g, pairs.rung, pairs.winner, strict=True)) == [
        ("SP-G", "G", "X"), ("SP-R", "R", "X-R"), ("LIME-R", "R", "tie"), ("SP-O", "O", "X-O")]
    report.save_results("02_localization", df, report.summarize(df, hib), pairs)
    text = summary.write_summary().read_text()
    assert "Over 1 paired X vs X-G comparisons (pairs × metrics × settings): X-G wins 0, X wins " \
           "1, ties 0. X vs X-R, over 2: X-R wins 1, X wins 0, ties 1. X vs X-O, over 1: X-O " \
           "wins 1, X wins 0, ties 0." in text
    assert "| SP | X-R | SP-R |" in text and "| SP | X-O | SP-O |" in text
    assert "**Claims**" in text
    assert ("| localisation | 02_localization | 0 / 1 / 0 (fails) | 1 / 0 / 1 (mixed) | "
            "1 / 0 / 0 (holds) |") in text
    counts = summary.claim_counts(pairs.assign(notebook="02_localization"))
    assert counts[["rung", "wins", "losses", "ties"]].values.tolist() == [
        ["G", 0, 1, 0], ["R", 1, 0, 1], ["O", 1, 0, 0]]


def test_copy_pairs_keeps_the_claims_verdicts_for_the_teach_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path / "out"))
    df = _long({"SP": [0.1, 0.2, 0.3, 0.4], "SP-G": [0.5, 0.6, 0.7, 0.9]}, metric="mass")
    pairs = report.compare_pairs(df, {"mass": True})
    report.save_results("02_localization", df, report.summarize(df, {"mass": True}), pairs)
    report.save_results("07_explorer", df, report.summarize(df, {"mass": True}), pairs)
    dest = tmp_path / "docs" / "pairs"
    assert summary.main(["--out", str(tmp_path / "s.md"), "--pairs-dir", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["02_localization_pairs.csv"]  # claims only
    kept = report.reference_pairs("02_localization", dest)
    assert report.verdict_agreement(pairs, kept)["agree"].all()


def test_a_rerun_of_one_notebook_keeps_the_other_sections_and_their_verdicts(tmp_path, monkeypatch):
    # a full run's page and verdicts, then results/ holds only a rerun of 03: the page keeps 02's
    # section verbatim, and the headline and claims count 02's verdicts from the pairs folder
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path / "full"))
    hib = {"mass": True}
    loc = _long({"SP": [0.1, 0.2, 0.3, 0.4], "SP-G": [0.5, 0.6, 0.7, 0.9]}, metric="mass")
    dele = _long({"SP": [0.5, 0.6, 0.7, 0.9], "SP-G": [0.1, 0.2, 0.3, 0.4]}, metric="mass")
    report.save_results("02_localization", loc, report.summarize(loc, hib),
                        report.compare_pairs(loc, hib))
    report.save_results("03_deletion", dele, report.summarize(dele, hib),
                        report.compare_pairs(dele, hib))
    pairs_dir = tmp_path / "pairs"
    assert summary.main(["--out", str(tmp_path / "page.md"), "--pairs-dir", str(pairs_dir)]) == 0
    full_page = (tmp_path / "page.md").read_text()
    rerun = tmp_path / "rerun"
    monkeypatch.setenv("KIT_OUTPUT", str(rerun))
    report.save_results("03_deletion", dele, report.summarize(dele, hib),
                        report.compare_pairs(dele, hib))
    out = summary.write_summary(out=tmp_path / "new.md", keep=tmp_path / "page.md",
                                keep_pairs=pairs_dir)
    assert out.read_text() == full_page  # same tables, same page
    assert summary.kept_sections(tmp_path / "page.md")["02_localization"][0] == "## 02_localization"
    # without the kept notebook's verdicts the headline would silently lose them: an error
    with pytest.raises(FileNotFoundError, match="02_localization_pairs.csv"):
        summary.write_summary(out=tmp_path / "x.md", keep=tmp_path / "page.md",
                              keep_pairs=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="keep: expected an earlier summary page"):
        summary.write_summary(out=tmp_path / "x.md", keep=tmp_path / "missing.md")


def test_kept_ladder_cells_follow_todays_convergence_table():
    # a kept section flagged LIME when it was written; today SP-G is budget-limited and LIME not
    lines = ["## 02_localization", "", "*mass (↑)*", "",
             "| set | method | X | X-G | X-R | X-O |", "|---|---|---|---|---|---|",
             "| a | SP | 0.1 [0.0, 0.2] | 0.3 [0.2, 0.4] | – | 0.5 |",
             "| a | LIME | 0.2 (budget-limited) | 0.4 | – | – |", "",
             "| pair | X | X-G |", "| SP | 1 (budget-limited) | 2 |", ""]
    out = summary.reflag(lines, {"SP-G"})
    assert out[6] == "| a | SP | 0.1 [0.0, 0.2] | 0.3 [0.2, 0.4] (budget-limited) | – | 0.5 |"
    assert out[7] == "| a | LIME | 0.2 | 0.4 | – | – |"
    # lines outside a ladder table (no method and rung columns) are left alone
    assert out[:6] == lines[:6] and out[8:] == lines[8:]
    assert summary.reflag(out, {"LIME"})[7] == "| a | LIME | 0.2 (budget-limited) | 0.4 | – | – |"
