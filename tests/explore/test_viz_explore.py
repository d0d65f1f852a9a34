"""kit.viz.explore: the explorer's static figure and its PNG panels."""

from __future__ import annotations

import pytest

from kit import explore
from kit.viz import explore as viz_explore

CHEAP = {"window": 16, "stride": 8}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ex(clf, img):
    return explore.compute(clf, img.x, img.target, method="SP", params=CHEAP)


def test_plot_explorations(img, ex):
    fig = viz_explore.plot_explorations(img.x, {"gray": ex, "again": ex}, title="t")
    assert len(fig.axes) == 2 * (2 + len(ex.fractions)) + 1
    assert viz_explore.figure_png(fig)[:8] == PNG
    with pytest.raises(ValueError, match="at least one"):
        viz_explore.plot_explorations(img.x, {})


def test_panels_are_pngs(img, ex):
    assert viz_explore.overlay_png(img.x, ex)[:8] == PNG
    assert viz_explore.strip_png(img.x, ex)[:8] == PNG
    assert viz_explore.curve_png({"gray": ex})[:8] == PNG
    assert viz_explore.hwc(img.x[0]).shape == (64, 64, 3)
