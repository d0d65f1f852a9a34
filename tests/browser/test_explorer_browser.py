"""The explorer in a real browser: Voilà serves notebooks/07_explorer.ipynb (with
``interactive=True``) on localhost, Debian's headless Chromium renders it through Playwright, a
control changes, and the rendered heatmap image must change. The second test does the same in
JupyterLab: it opens the notebook, runs its cells through JupyterLab's own command, and drives the
same widgets.

Playwright launches ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it)
and never downloads a browser. The test skips, saying why, when chromium, Playwright or Voilà is
missing (a missing chromium fails instead under ``CI=true``). Screenshots go to ``$KIT_OUTPUT/figures/07_explorer/`` (``make test`` points KIT_OUTPUT
at a temporary folder): ``browser_before.png`` and ``browser_after.png`` (the page), and
``browser_widget.png`` (the explorer after the change); the JupyterLab test writes
``jupyterlab_before.png`` and ``jupyterlab_after.png``.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "07_explorer.ipynb"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
]
# Cheap selection: 3x3 sliding-patch grid, no inpainter in the comparison tab.
OVERRIDES = {"interactive": True, "window": 32, "stride": 16, "compare_b": "blur"}
BUDGET_S = 90  # the whole test, server start to screenshots


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited early with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the server did not listen on port {port} in time")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM voila (it shuts its kernels down), then SIGKILL its own process group."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group start_new_session gave voila and kernels
    except ProcessLookupError:
        pass
    proc.wait(5)


def _pixels(png: bytes):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


# A rendered <img> whose pixels are decoded (src set, load finished).
_LOADED = """sel => { const i = document.querySelector(sel);
                      return i !== null && i.complete && i.naturalWidth > 0; }"""
_CHANGED = """([sel, old]) => { const i = document.querySelector(sel);
                               return i !== null && i.src !== old && i.complete
                                      && i.naturalWidth > 0; }"""


def _require_browser(server_module: str):
    """The Playwright sync API, after checking chromium and the server package are there.

    In CI (.ci/run sets CI=true and installs chromium) a missing browser is a failure, not a
    skip: these are the tests that show the explorer works in a real browser.
    """
    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    pytest.importorskip(server_module, reason=f"{server_module} is not installed")
    return sync_api


def _served_notebook(tmp_path: Path, *, up_to_explorer: bool = False) -> Path:
    """The committed notebook with interactive=True injected after its parameters cell, as
    papermill would; ``up_to_explorer`` drops the static sections after the live cell."""
    import nbformat
    from papermill.parameterize import parameterize_notebook

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.metadata["papermill"] = {}  # where parameterize_notebook records what it injected
    nb = parameterize_notebook(nb, OVERRIDES)
    if up_to_explorer:
        live = next(i for i, c in enumerate(nb.cells)
                    if c.cell_type == "code" and "widgets.explorer(" in c.source)
        nb.cells = nb.cells[: live + 1]
    served = tmp_path / "07_explorer.ipynb"
    nbformat.write(nb, served)
    return served


def _start_server(args: list[str], tmp_path: Path, name: str, **env_extra: str):
    """``python -m <args>`` in its own process group, Jupyter state under ``tmp_path``."""
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "jconfig"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jruntime"), **env_extra)
    env.pop("MPLBACKEND", None)  # the kernel picks the inline backend, as in JupyterLab
    env.setdefault("KIT_OUTPUT", str(tmp_path / "out"))
    log = (tmp_path / f"{name}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=tmp_path, env=env, stdout=log,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    return proc, log


def _launch(p, tmp_path: Path):
    return p.chromium.launch_persistent_context(
        str(tmp_path / "profile"),  # a fresh --user-data-dir
        executable_path=str(CHROMIUM), headless=True, args=FLAGS,
        viewport={"width": 1400, "height": 1000},
    )


def _change_remover(page, ms, out: Path, prefix: str) -> tuple[bytes, bytes]:
    """Wait for the explore tab's heatmap, switch its remover to blur, wait for the new one.

    Returns the heatmap's screenshots before and after; full-page screenshots go to
    ``out/<prefix>_before.png`` and ``out/<prefix>_after.png``.
    """
    heat = "img.kit-heatmap-0"  # the explore tab's overlay (first in the page)
    page.wait_for_function(_LOADED, arg=heat, timeout=ms())
    page.wait_for_function(
        "() => [...document.querySelectorAll('.kit-status')]"
        ".some(e => e.textContent.includes('deletion AUC'))", timeout=ms())
    before_src = page.eval_on_selector(heat, "i => i.src")
    before = page.locator(heat).first.screenshot()
    page.screenshot(path=str(out / f"{prefix}_before.png"), full_page=True)

    page.locator(".kit-remover-0 select").first.select_option("blur")
    page.wait_for_function(_CHANGED, arg=[heat, before_src], timeout=ms())
    page.wait_for_function(
        "() => document.querySelector('.kit-status').textContent.includes('blur')",
        timeout=ms())
    after = page.locator(heat).first.screenshot()
    page.screenshot(path=str(out / f"{prefix}_after.png"), full_page=True)
    return before, after


def _assert_heatmap_changed(before: bytes, after: bytes) -> None:
    a, b = _pixels(before), _pixels(after)
    assert min(a.shape[:2] + b.shape[:2]) > 50, "the heatmap image did not render"
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])  # layout may shift a pixel
    changed = float((abs(a[:h, :w] - b[:h, :w]).sum(-1) > 30).mean())
    assert changed > 0.01, f"only {changed:.4f} of the heatmap's pixels changed"


def test_explorer_heatmap_changes_in_chromium(tmp_path):
    sync_api = _require_browser("voila")
    from kit.paths import figures_dir

    served = _served_notebook(tmp_path)
    t0 = time.monotonic()
    deadline = t0 + BUDGET_S
    port = _free_port()
    proc, log = _start_server(
        ["voila", str(served), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
         "--VoilaExecutor.timeout=120"], tmp_path, "voila")
    out = figures_dir("07_explorer")
    try:
        _wait_listening(port, proc, t0 + 30)
        with sync_api.sync_playwright() as p:
            ctx = _launch(p, tmp_path)
            try:
                page = ctx.new_page()
                ms = lambda: max(1000, int((deadline - time.monotonic()) * 1000))  # noqa: E731
                page.goto(f"http://127.0.0.1:{port}/", timeout=ms())
                before, after = _change_remover(page, ms, out, "browser")
                page.locator(".widget-tab").first.screenshot(path=str(out / "browser_widget.png"))
            finally:
                ctx.close()
    finally:
        _stop(proc)
        log.close()

    _assert_heatmap_changed(before, after)
    assert (out / "browser_after.png").stat().st_size > 10_000
    assert time.monotonic() - t0 < BUDGET_S + 15


JUPYTERLAB_BUDGET_S = 120  # server start, the lab's front end, kernel start and the explorer
_KERNEL_IDLE = """() => { const app = window.jupyterapp;
    const w = app && app.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session
              && w.sessionContext.session.kernel;
    return !!k && k.status === 'idle'; }"""


def test_explorer_heatmap_changes_in_jupyterlab(tmp_path):
    """JupyterLab (not Voilà) renders the explorer's widgets and reacts to a control."""
    sync_api = _require_browser("jupyterlab")
    from kit.paths import figures_dir

    # Up to the live cell: the static sections after it would keep the kernel busy while the
    # test drives the widgets.
    _served_notebook(tmp_path, up_to_explorer=True)
    t0 = time.monotonic()
    deadline = t0 + JUPYTERLAB_BUDGET_S
    port = _free_port()
    proc, log = _start_server(
        ["jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password=",
         "--allow-root",  # CI runs as root
         f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        tmp_path, "jupyterlab",
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"))
    out = figures_dir("07_explorer")
    try:
        _wait_listening(port, proc, t0 + 60)
        with sync_api.sync_playwright() as p:
            ctx = _launch(p, tmp_path)
            try:
                page = ctx.new_page()
                ms = lambda: max(1000, int((deadline - time.monotonic()) * 1000))  # noqa: E731
                page.goto(f"http://127.0.0.1:{port}/lab/tree/07_explorer.ipynb", timeout=ms())
                page.wait_for_function(_KERNEL_IDLE, timeout=ms())
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                before, after = _change_remover(page, ms, out, "jupyterlab")
            except Exception:
                page.screenshot(path=str(out / "jupyterlab_failure.png"))  # for diagnosis
                raise
            finally:
                ctx.close()
    finally:
        _stop(proc)
        log.close()

    _assert_heatmap_changed(before, after)
