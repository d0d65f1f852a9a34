"""tools/roar_results.py: notebook 06's findings page, every number read from its CSVs, and the
README's generated section quoting its bullets verbatim."""

import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import readme_results  # noqa: E402
import roar_results  # noqa: E402


def _write(folder: Path) -> None:
    def save(rows, name):
        pd.DataFrame(rows).to_csv(folder / name)  # index written, as kit.paths.save_table does

    save([dict(mode="none", accuracy=0.91), dict(mode="none", accuracy=0.93),
          dict(mode="roar", accuracy=0.5)], "06_roar_per_image.csv")
    save([dict(mode="roar", fill="gray", estimator="SP", rank=1, score=0.412, beats_random=True),
          dict(mode="roar", fill="gray", estimator="random", rank=2, score=0.8,
               beats_random=False)], "06_roar_ranking.csv")
    save([dict(mode="roar", fill_a="gray", fill_b="inpaint_removal", n_estimators=3,
               spearman=0.5, same_best=True, best_a="SP", best_b="SP")],
         "06_roar_rank_agreement.csv")
    save([dict(order="morf", fill="noisy_linear", estimator="SP", score=0.3, beats_random=True)],
         "06_roar_road_ranking.csv")
    save([dict(order="morf", mode="roar", road_fill="noisy_linear", roar_fill="gray",
               n_estimators=2, spearman=1.0, same_best=True, best_road="SP", best_roar="SP")],
         "06_roar_road_agreement.csv")
    save([dict(estimator="SP", input="mask", mode="roar", fraction=0.5, mean=0.6, ci_low=0.5,
               ci_high=0.7, n=2)], "06_roar_leak.csv")


def test_findings_come_from_the_tables(tmp_path):
    _write(tmp_path)
    lines = roar_results.findings(tmp_path)
    text = "\n".join(lines)
    assert "0.920 test accuracy (mean of 2 seeds" in text
    assert "SP 0.412, random 0.800. Beat random (paired t-interval over seeds): SP." in text
    assert "gray vs inpaint_removal:** Spearman 0.50" in text
    assert "ROAD MORF, noisy_linear fill" in text and "ROAD MORF (noisy_linear) vs ROAR" in text
    assert "mask 0.600 [0.500, 0.700]" in text
    # change a number in a table: the finding follows
    df = pd.read_csv(tmp_path / "06_roar_ranking.csv", index_col=0)
    df.loc[0, "score"] = 0.111
    df.to_csv(tmp_path / "06_roar_ranking.csv")
    assert "SP 0.111" in "\n".join(roar_results.findings(tmp_path))


def test_page_and_readme_quote_the_bullets(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    _write(res)
    out = tmp_path / "docs" / "06_roar.md"
    assert roar_results.main(["--results", str(res), "--out", str(out),
                              "--config", "a test run"]) == 0
    assert (out.parent / "06_roar" / "06_roar_ranking.csv").is_file()
    lines = readme_results.roar_findings(out.parent, "docs")
    assert "(configuration: a test run)" in lines[1]
    assert lines[3:] == roar_results.findings(res)


def test_no_tables_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no ROAR tables"):
        roar_results.findings(tmp_path)
