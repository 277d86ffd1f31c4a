"""Take the README's screenshot of the app: serve a model, upload an example in headless Chromium, ask for Grad-CAM.

    python tools/app_screenshot.py                                   # outputs/model.pt -> Images/app_screenshot.png
    python tools/app_screenshot.py --model M --data_dir D --out shot.png --chromium /usr/bin/chromium

Playwright drives Debian's Chromium (apt-get install chromium), not a browser of its own. The browser test
(tests/test_app_browser.py) uses drive() below, so the screenshot shows what that test checks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def drive(*, page, url: str, image: str | Path, timeout_ms: int = 120_000) -> dict:
    """Open the app at url, upload `image`, wait for the answer the upload alone brings; return what the page shows.

    Returns {"label": the top class shown, "captions": the Grad-CAM captions, "images": their image URLs (each the
    image as the model saw it, with the heatmap beside it)}.
    """
    page.goto(url, wait_until="networkidle", timeout=timeout_ms)
    page.locator("#image input[type=file]").set_input_files(str(image))
    page.locator("#image img").first.wait_for(timeout=timeout_ms)  # the upload is shown
    page.locator("#cams img").first.wait_for(timeout=timeout_ms)  # answered on upload: no button pressed
    page.wait_for_function("() => [...document.querySelectorAll('#cams img')].every(i => i.complete && "
                           "i.naturalWidth > 0)", timeout=timeout_ms)  # fmt: skip
    heading = page.locator("#top [data-testid=label-output-value]").first
    heading.wait_for(timeout=timeout_ms)
    captions = [c.strip() for c in page.locator("#cams .caption-label").all_inner_texts()]
    sources = [el.get_attribute("src") for el in page.locator("#cams img").all()]
    return {"label": heading.inner_text().strip(), "captions": captions, "images": sources}


def screenshot(*, url: str, image: str | Path, out: str | Path, chromium: str = CHROMIUM) -> dict:
    """drive() in a headless Chromium, then save a full-page PNG to `out`; returns what drive() read."""
    from playwright.sync_api import sync_playwright

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
            shown = drive(page=page, url=url, image=image)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    return shown


def main(argv: list[str] | None = None) -> int:
    """Serve the model on a free localhost port, take the screenshot, stop the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "outputs" / "model.pt"), help="model.pt (outputs/model.pt)")
    parser.add_argument("--data_dir", default=None, help="the model's data (default: where model.pt says)")
    parser.add_argument("--out", default=str(ROOT / "Images" / "app_screenshot.png"), help="the PNG to write")
    parser.add_argument("--image", default=None, help="the image to upload (default: the fourth example)")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the Chromium to drive (default: {CHROMIUM})")
    args = parser.parse_args(argv)
    if not Path(args.chromium).is_file():
        print(f"error: no Chromium at {args.chromium}; apt-get install chromium, or pass --chromium", file=sys.stderr)
        return 2
    from eva_helpers.app.local import load_local
    from eva_helpers.app.ui import build_ui, serve

    try:
        app = load_local(model_path=args.model, data_dir=args.data_dir, device="cpu")
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.image is None and not app.examples:
        print("error: the app has no examples (no data found); pass --image or --data_dir", file=sys.stderr)
        return 2
    image = args.image or app.examples[min(3, len(app.examples) - 1)]
    demo = build_ui(app=app)
    try:
        url, _ = serve(demo=demo, block=False, port=None)
        shown = screenshot(url=url, image=image, out=args.out, chromium=args.chromium)
    finally:
        demo.close()
    print(f"wrote {args.out}: {Path(image).name} shown as {shown['label']!r}, Grad-CAM {shown['captions']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
