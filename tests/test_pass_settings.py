"""benchmarks/pass_settings.py: the settings table (its timings are a benchmark, never a test)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("pass_settings",
                                                  ROOT / "benchmarks" / "pass_settings.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_table_keeps_each_settings_best_batch_and_divides_kits_setting_by_it():
    mod = _module()
    rows = [dict(kind="inpainter", layout="channels_last", compile=False, threads=2, batch=8, ms=4.0),
            dict(kind="inpainter", layout="channels_last", compile=False, threads=2, batch=32, ms=6.0),
            dict(kind="inpainter", layout="contiguous", compile=True, threads=1, batch=8, ms=2.0),
            dict(kind="inpainter", layout="channels_last", compile=False, threads=1, batch=8, ms=8.0)]
    text = mod.markdown(rows, {("inpainter", "contiguous"): 12.5}, load=True, seconds=60)
    assert "beside a second CPU-bound process" in text
    assert "| inpainter | channels_last | eager | 2 | 4.000 | 1.00 |" in text  # best of 4 and 6
    assert "| inpainter | contiguous | torch.compile | 1 | 2.000 | 2.00 |" in text
    assert "| inpainter | channels_last | eager | 1 | 8.000 | 0.50 |" in text
    assert "- inpainter / contiguous: 12.5 s" in text
