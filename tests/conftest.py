"""Shared test set-up: headless matplotlib, seeding, opt-in markers and the nbval output filter.

* Every test starts from seeded ``random``, ``numpy`` and ``torch`` global generators (``seed``).
* ``@pytest.mark.slow`` tests run only with ``--run-slow``; ``@pytest.mark.gpu`` ones need CUDA.
* Notebooks collected by nbval (``make test``) do not compare stderr, HTML or JavaScript outputs
  (style.md §10.4); their kernels keep the inline matplotlib backend the committed outputs were made
  with, whatever ``MPLBACKEND`` this process has.
* nbval runs a notebook at its **cheap** configuration: where ``params/cheap/<stem>.yaml`` exists,
  its values are appended to the notebook's ``parameters`` cell (:func:`cheap_parameters`), as
  papermill injects parameters after that cell; the notebook's own defaults (the ``teach``
  configuration, minutes per notebook) are what people get.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # before anything imports matplotlib

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEED = 1234


@pytest.fixture(autouse=True)
def seed() -> int:
    """Seed the global generators before each test; returns the seed."""
    random.seed(SEED)
    np.random.seed(SEED)  # noqa: NPY002 (the legacy global generator is what we seed)
    torch.manual_seed(SEED)
    return SEED


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--run-slow")
    has_cuda = torch.cuda.is_available()
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow: run with --run-slow"))
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="gpu: CUDA is not available"))


def cheap_parameters(stem: str) -> dict:
    """``params/cheap/<stem>.yaml`` (empty when the notebook has none)."""
    import yaml

    path = ROOT / "params" / "cheap" / f"{stem}.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def injected_source(params: dict) -> str:
    """Assignments of ``params``, appended to a notebook's parameters cell under nbval."""
    lines = ["", "# nbval: params/cheap (tests/conftest.py), after the defaults as papermill would"]
    lines += [f"{k} = {v!r}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


class _NbvalHooks:
    """nbval's documented ``pytest_collectstart`` hook, registered as a plugin in
    ``pytest_configure`` so that it also sees ``notebooks/`` (a conftest hook only sees the
    collectors below its own folder)."""

    def pytest_collectstart(self, collector: pytest.Collector) -> None:
        if not hasattr(collector, "skip_compare"):  # not an nbval IPyNbFile
            return
        collector.skip_compare += ("stderr", "text/html", "application/javascript")
        # The exact repository root first; tests/nbval_sanitize.cfg has a generic pattern too.
        collector.sanitize_patterns[re.escape(str(ROOT))] = "<ROOT>"
        setup = collector.setup

        def setup_with_inline_backend() -> None:
            # The kernel starts here and inherits os.environ: without MPLBACKEND, ipykernel picks
            # the inline backend, as under `make refresh-notebooks`.
            saved = os.environ.pop("MPLBACKEND", None)
            try:
                setup()
            finally:
                if saved is not None:
                    os.environ["MPLBACKEND"] = saved

        collector.setup = setup_with_inline_backend
        cheap = cheap_parameters(Path(str(collector.fspath)).stem)
        if cheap:
            collect = collector.collect

            def collect_cheap():
                for item in collect():
                    if "parameters" in item.cell.metadata.get("tags", []):
                        item.cell.source = item.cell.source + injected_source(cheap)
                    yield item

            collector.collect = collect_cheap


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("kit-nbval-hooks"):
        config.pluginmanager.register(_NbvalHooks(), "kit-nbval-hooks")
