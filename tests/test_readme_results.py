"""tools/readme_results.py: README.md's results section is generated from docs/results/."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
sys.path.insert(0, str(TOOLS))  # the tool imports its sibling tools/summary.py as run from tools/
import readme_results  # noqa: E402

SUMMARY = """# Results summary

**Headline.** Over 4 paired X vs X-G comparisons (pairs × metrics × settings): X-G wins 3, X wins 1, ties 0.

**Run time.** 1.0 min for 2 notebooks (00_world 20 s, 04_sam_sensitivity 40 s).

## 00_world

## 04_sam_sensitivity

**X vs X-G**

| param | metric | better | X | X-G | mean X | mean X-G | X-G − X [95% CI] | X-G better on | n | winner |
|---|---|---|---|---|---|---|---|---|---|---|
| window | ssim | higher | SP | SP-G | 0.1 | 0.2 | 0.1 [0.0, 0.2] | 90% | 5 | **tie** |
| all | ssim | higher | SP | SP-G | 0.1 | 0.2 | 0.1 [0.05, 0.2] | 90% | 5 | **X-G** |
| all | hog | higher | SP | SP-G | 0.1 | 0.2 | 0.1 [0.05, 0.2] | 90% | 5 | **X-G** |
| all | ssim | higher | RISE | RISE-G | 0.3 | 0.2 | -0.1 [-0.2, -0.05] | 10% | 5 | **X** |
| all | ssim | higher | FIDO-CA-SSR | FIDO-CA-SDR | 0.3 | 0.2 | -0.1 [-0.2, 0.1] | 10% | 5 | **tie** |

**All methods**

| method | param | ssim (↑) |
|---|---|---|
| SP | all | 0.100 [0.050, 0.150] |
| SP-G | all | 0.200 [0.150, 0.250] |
"""

README = """# project

## Set-up

make test

## Results

text before
<!-- results:begin -->
a hand-copied number: 0.123
<!-- results:end -->
text after
"""


@pytest.fixture()
def copy(tmp_path):
    results = tmp_path / "docs" / "results"
    results.mkdir(parents=True)
    (results / "summary.md").write_text(SUMMARY, encoding="utf-8")
    (results / "04_similarity_bars.png").write_bytes(b"\x89PNG")
    readme = tmp_path / "README.md"
    readme.write_text(README, encoding="utf-8")
    return readme, results


def _run(readme, results, *extra):
    return readme_results.main(["--readme", str(readme), "--results", str(results), *extra])


def test_repository_readme_is_in_sync():
    # The README's results section must be what docs/results/ gives: a hand-edited number fails.
    proc = subprocess.run([sys.executable, str(TOOLS / "readme_results.py"), "--check"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_generate_writes_between_the_markers_only(copy):
    readme, results = copy
    assert _run(readme, results, "--check") == 1  # the hand-copied line is out of sync
    assert _run(readme, results) == 0
    text = readme.read_text(encoding="utf-8")
    assert "0.123" not in text
    assert text.startswith("# project\n\n## Set-up\n\nmake test\n") and text.endswith(
        "<!-- results:end -->\ntext after\n")
    assert "**Headline.** Over 4 paired" in text and "**Run time.** 1.0 min" in text
    # pooled "all" rows only (the headline's rule), twins from METHODS, FIDO's objectives apart
    assert "| SP vs SP-G | 2 / 0 / 0 | **2 / 0 / 0** |" in text
    assert "| RISE vs RISE-G | 0 / 1 / 0 | **0 / 1 / 0** |" in text
    assert "| FIDO-CA-SSR vs FIDO-CA-SDR (not X and one of its rungs) | 0 / 0 / 1 |" in text
    assert "- [`00_world`](docs/results/summary.md#00_world): no table in the summary." in text
    assert "![04_sam_sensitivity: similarity bars](docs/results/04_similarity_bars.png)" in text
    assert _run(readme, results, "--check") == 0
    assert _run(readme, results) == 0 and readme.read_text(encoding="utf-8") == text  # idempotent


def test_hand_edit_inside_the_section_fails_the_check(copy):
    readme, results = copy
    _run(readme, results)
    text = readme.read_text(encoding="utf-8")
    readme.write_text(text.replace("2 / 0 / 0", "3 / 0 / 0", 1), encoding="utf-8")
    assert _run(readme, results, "--check") == 1
    readme.write_text(text.replace("text after", "prose outside the markers is free"),
                      encoding="utf-8")
    assert _run(readme, results, "--check") == 0


def test_missing_markers_or_summary_are_named(copy):
    readme, results = copy
    readme.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="results:begin.*found 0 and 0"):
        _run(readme, results, "--check")
    readme.write_text(README, encoding="utf-8")
    (results / "summary.md").unlink()
    with pytest.raises(SystemExit, match="summary.md not found"):
        _run(readme, results)


def test_rung_comparisons_and_claims_reach_the_readme(tmp_path, monkeypatch):
    # end to end: compare_pairs -> tools/summary.py's page (the current layout) -> the README
    import pandas as pd
    import summary

    from kit import report

    out = tmp_path / "out"
    monkeypatch.setenv("KIT_OUTPUT", str(out))
    base = [0.1, 0.2, 0.3, 0.4, 0.3, 0.2]
    vals = {"SP": base, "SP-G": [v - 0.1 for v in base], "SP-O": [v + 0.3 for v in base]}
    df = pd.DataFrame([{"image": i, "method": k, "metric": "mass", "value": v}
                       for k, vs in vals.items() for i, v in enumerate(vs)])
    hib = {"mass": True}
    report.save_results("02_localization", df, report.summarize(df, hib),
                        report.compare_pairs(df, hib))
    results = tmp_path / "docs" / "results"
    summary.write_summary(out=results / "summary.md", figures_per_notebook=0)
    readme = tmp_path / "README.md"
    readme.write_text(README, encoding="utf-8")
    assert _run(readme, results) == 0
    text = readme.read_text(encoding="utf-8")
    assert "**Claims** (from [`docs/results/summary.md`]" in text
    assert "| localisation | 02_localization | 0 / 1 / 0 (fails) | 1 / 0 / 0 (holds) |" in text
    assert "| SP vs SP-G | 0 / 1 / 0 | **0 / 1 / 0** |" in text
    assert "| SP vs SP-O | 1 / 0 / 0 | **1 / 0 / 0** |" in text
    assert "2 X vs its rungs rows" in text
    assert _run(readme, results, "--check") == 0
