"""The inspectors work for a person: JupyterLab in headless Chromium, driven by Playwright.

The test starts JupyterLab on localhost (free port, throwaway profile, random token), copies
``inspectors.ipynb`` with ``RUN`` set to the session's `smoke` run (with a synthetic
diagnosis), opens it in Debian's Chromium (``/usr/bin/chromium``; Playwright cannot download
its own browser here), runs all cells, waits for both widgets, changes the planted-cause
filter, picks another sample, moves the checkpoint slider, and checks each time that what is
shown changes to what the state class predicts. Screenshots go to ``test-artifacts/browser/``.

Skipped, saying why, where Playwright (python) or Chromium is missing or Chromium cannot start.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from ilpnb.widgets.samples import SampleState

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHORT = 30_000  # ms
LONG = 240_000  # ms: kernel start, imports, interactions at three checkpoints on a busy 2-core machine

_CARD_ID = "() => { const e = document.querySelector('.ilpnb-sample-card [data-sample-id]'); " \
           "return e ? e.getAttribute('data-sample-id') : null; }"
_VIEW_STEP = "() => { const e = document.querySelector('.ilpnb-interaction-view [data-step]'); " \
             "return e ? e.getAttribute('data-step') : null; }"


def _browser() -> tuple[Any, str]:
    """``sync_playwright`` and the Chromium executable, or a skip that says what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        pytest.skip(f"Playwright for Python is not installed in {sys.executable} ({err}); "
                    "`pip install playwright` (the dev extra) — never `playwright install` here")
    chromium = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not chromium:
        pytest.skip(f"no Chromium: {CHROMIUM} is missing and no `chromium` is on PATH; Playwright cannot "
                    "download its own browser here (`make test` installs Debian's chromium when run as root)")
    return sync_playwright, chromium


def _predict(run: Path) -> dict[str, Any]:
    """What a person should see, from the state class: a filter value that changes the shown
    sample, the sample it shows, and another sample to pick in that list."""
    st = SampleState.from_run(run)
    first = st.current
    choices = sorted(st.filter_options("planted")[1:], key=lambda lv: lv[1] != "data_conflict")  # siblings first
    for label, value in choices:
        st.set_filter("planted", value)
        if st.current not in (None, first) and len(st.visible_ids) >= 2:
            return {"first": first, "planted_label": label, "after_filter": st.current,
                    "after_filter_prompt": st.row()["prompt"], "pick": st.visible_ids[1],
                    "pick_label": dict((v, lbl) for lbl, v in st.options())[st.visible_ids[1]],
                    "pick_prompt": st.row(st.visible_ids[1])["prompt"]}
        st.set_filter("planted", "all")
    pytest.fail("no planted-cause filter value changes the shown sample in this run")


def _text(page: Any, selector: str) -> str:
    return page.locator(selector).first.inner_text()


def test_inspectors_in_jupyterlab(diagnosed_run: Path, smoke_run: Any, tmp_path: Path) -> None:
    sync_playwright, chromium = _browser()
    from lab_helpers import Lab, fixture_notebook

    expect = _predict(diagnosed_run)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    lab = Lab(tmp_path / "lab", env={"ILPNB_CACHE": str(smoke_run.cache), "OMP_NUM_THREADS": "1",
                                     "MKL_NUM_THREADS": "1"})
    with sync_playwright() as pw:
        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
        try:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": 1400, "height": 1500})
        except Exception as err:  # noqa: BLE001 - a machine that truly cannot run a browser
            pytest.skip(f"Chromium at {chromium} cannot start here: {str(err).splitlines()[0]}")
        try:
            with lab:
                fixture_notebook(lab.root / "inspectors.ipynb", diagnosed_run)
                _drive(context.new_page(), lab, expect)
        except Exception as err:
            raise AssertionError(f"{err}\n--- jupyter lab log (tail) ---\n{lab.log_tail()}") from err
        finally:
            context.close()
    shots = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert len(shots) == 6, shots


def _drive(page: Any, lab: Any, expect: dict[str, Any]) -> None:
    page.set_default_timeout(SHORT)
    page.goto(f"{lab.url}/lab/tree/inspectors.ipynb?token={lab.token}&reset", wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')", timeout=LONG)
    kernel_idle = ("() => { const w = window.jupyterapp.shell.currentWidget; const s = w && w.sessionContext; "
                   "const k = s && s.session && s.session.kernel; return !!k && k.status === 'idle'; }")
    page.wait_for_function(kernel_idle, timeout=LONG)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

    # -- the sample inspector renders its default state ---------------------------------
    page.wait_for_function(f"() => ({_CARD_ID})() !== null", timeout=LONG)
    assert page.evaluate(_CARD_ID) == expect["first"]
    assert page.locator(".ilpnb-sample-card img[alt^='learning curve']").count() == 1
    assert not page.locator(".ilpnb-fallback").first.is_visible()  # the static copy hides behind the widget
    page.wait_for_function(f"() => ({_VIEW_STEP})() !== null", timeout=LONG)
    page.wait_for_function(kernel_idle, timeout=LONG)
    page.screenshot(path=str(ARTIFACTS / "01-notebook-after-run-all.png"))
    inspector = page.locator(".ilpnb-sample-inspector").first
    inspector.scroll_into_view_if_needed()
    inspector.screenshot(path=str(ARTIFACTS / "02-sample-inspector-default.png"))

    # -- a filter changes the shown sample ------------------------------------------------
    page.locator(".ilpnb-filter-planted select").select_option(label=expect["planted_label"])
    page.wait_for_function(f"(old) => ({_CARD_ID})() !== old", arg=expect["first"])
    assert page.evaluate(_CARD_ID) == expect["after_filter"]
    assert _text(page, ".ilpnb-sample-card .ilpnb-prompt") == expect["after_filter_prompt"]
    inspector.screenshot(path=str(ARTIFACTS / "03-sample-inspector-after-filter.png"))

    # -- picking another sample shows it --------------------------------------------------
    page.locator(".ilpnb-sample-picker select").select_option(label=expect["pick_label"])
    page.wait_for_function(f"(old) => ({_CARD_ID})() !== old", arg=expect["after_filter"])
    assert page.evaluate(_CARD_ID) == expect["pick"]
    assert _text(page, ".ilpnb-sample-card .ilpnb-prompt") == expect["pick_prompt"]
    inspector.screenshot(path=str(ARTIFACTS / "04-sample-inspector-after-pick.png"))

    # -- the interaction viewer: the checkpoint slider changes the view -------------------
    viewer = page.locator(".ilpnb-interaction-viewer").first
    viewer.scroll_into_view_if_needed()
    before = page.evaluate(_VIEW_STEP)
    assert "salient interactions against step 0 (base)" in viewer.inner_text()
    viewer.screenshot(path=str(ARTIFACTS / "05-interaction-viewer-last-checkpoint.png"))
    handle = page.locator(".ilpnb-checkpoint-slider .noUi-handle").first
    handle.focus()
    page.keyboard.press("Home")
    try:
        page.wait_for_function(f"(old) => ({_VIEW_STEP})() !== old", arg=before, timeout=10_000)
    except Exception:  # noqa: BLE001 - older sliders: step left with the arrow key
        for _ in range(8):
            page.keyboard.press("ArrowLeft")
        page.wait_for_function(f"(old) => ({_VIEW_STEP})() !== old", arg=before)
    assert page.evaluate(_VIEW_STEP) == "0"
    assert "is the first checkpoint" in viewer.inner_text()
    viewer.screenshot(path=str(ARTIFACTS / "06-interaction-viewer-base-checkpoint.png"))
