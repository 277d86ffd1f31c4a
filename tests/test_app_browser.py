"""The app in a real headless Chromium (Debian's, driven by Playwright): upload, Grad-CAM, read the page."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scripts import load_script
from test_app_support import serving

pytest.importorskip("gradio", reason="the app extra is not installed: pip install -e .[app]")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e .[dev]")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(), reason="no chromium on PATH: apt-get install chromium (.ci/run does)"
    ),
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),  # pandas 3 deprecations inside Gradio's queue,
]
tool = load_script(ROOT / "tools" / "app_screenshot.py")


def test_a_visitor_uploads_an_image_asks_for_grad_cam_and_sees_the_label_and_the_heatmap(app):
    from eva_helpers.app.card import page_title
    from eva_helpers.app.service import explain_image, read_upload

    example = app.examples[7]
    top, gallery = explain_image(app=app, image=read_upload(example, size=32), k=5, layers=["layer3"], opacity=0.5)
    with serving(app) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            shown = tool.drive(page=page, url=url, image=example)
            assert shown["label"] == top[0][0]  # the page's defaults: k=5, the deepest layer, opacity 0.5
            assert shown["captions"] == [caption for _, caption in gallery]  # the crop with the heatmap beside it
            for source, (want, _) in zip(shown["images"], gallery, strict=True):
                pixels = np.asarray(Image.open(io.BytesIO(page.request.get(source).body())).convert("RGB"))
                assert np.abs(pixels.astype(int) - want).max() <= 2
            assert page.title() == page_title(app)
            style = "els => els.map(e => getComputedStyle(e).imageRendering)"
            rendering = page.eval_on_selector_all("#cams img", style)
            assert set(rendering) == {"pixelated"}  # 4x4 heatmaps as sharp blocks, not a blur
            bars = page.locator("#top [data-testid$=-confidence-set]").all_inner_texts()
            assert [b.split()[0] for b in bars] == [c for c, _ in top]
        finally:
            browser.close()


def test_on_a_phone_the_answer_comes_right_under_the_image_before_the_examples_and_settings(app):
    with serving(app) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
            shown = tool.drive(page=page, url=url, image=app.examples[1])
            assert shown["label"] and len(shown["captions"]) == 1
            box = {name: page.locator(f"#{name}").first.bounding_box() for name in ("image", "top", "cams", "examples")}
            assert box["image"]["y"] < box["top"]["y"] < box["cams"]["y"] < box["examples"]["y"]  # stacked, in order
            assert all(b["x"] >= 0 and b["x"] + b["width"] <= 390 + 1 for b in box.values())  # nothing off the side
            heatmap = page.locator("#cams img").first.bounding_box()
            assert heatmap["width"] >= 100 and heatmap["x"] + heatmap["width"] <= 390 + 1  # large and fully visible
        finally:
            browser.close()


def test_the_screenshot_tool_writes_a_png_of_the_app(app, tmp_path):
    out = tmp_path / "shot.png"
    model = app.examples[0].parent.parent / "model.pt"
    assert tool.main(["--model", str(model), "--out", str(out), "--chromium", CHROMIUM]) == 0
    with Image.open(out) as im:
        assert im.width == 1280 and im.height > 800
