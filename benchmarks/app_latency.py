"""How long a visitor waits for the app, as a ratio to Gradio's own echo of the same image, measured in one run.

    python benchmarks/app_latency.py                       # outputs/model.pt if it exists, else a model trained now
    python benchmarks/app_latency.py --model M --calls 100 --threads 1

On localhost, with the servers in a child process (a client does not share the server's GIL):
- explain: the app's /explain (top 5 and the Grad-CAM of the deepest layer) through gradio_client, as a script
  calls it: the image uploaded, the answer and the heatmaps downloaded;
- echo: a Gradio app that takes the same image and returns it with a label, through gradio_client: the floor
  that Gradio itself puts under any answer. explain and echo alternate call by call, so that a change in the
  machine's load falls on both;
- the same two while another client keeps asking the app for 100 mistakes with Grad-CAM;
- direct: service.explain_image called in Python (the model's and the overlay's own work);
- browser: in headless Chromium, the time from choosing the file to the heatmap drawn on the page.
Every call sends a new image (a pixel differs), so the app's kept answers (service.AppModel.answers) never
serve a timed call. Prints a table, then as its last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # run as `python benchmarks/app_latency.py` from a checkout, installed or not
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from machine import _load, machine  # noqa: E402

NAMES = {"explain": "top 5 + Grad-CAM via gradio_client", "echo": "image echo via gradio_client",
         "explain_loaded": "explain, another client asking mistakes", "echo_loaded": "echo, the same load",
         "direct": "explain_image called in Python", "browser": "upload to heatmap in Chromium"}  # fmt: skip
MISTAKES = 100  # what the other client asks for, with Grad-CAM, in a loop
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def tiny_model(folder: Path) -> Path:
    """model.pt of a custom ResNet trained one epoch on 64 generated images (seconds): the latency is the same."""
    from eva_helpers.data import synthetic
    from eva_helpers.recipe import load_recipe
    from eva_helpers.run_setup import new_model
    from eva_helpers.training import fit

    data = synthetic(n_train=64, n_test=16, seed=0)
    recipe = load_recipe(epochs=1, peak_epoch=1, max_lr=0.02, batch_size=32, precision="fp32", channels_last=False,
                         progress=False, out_dir=str(folder), seed=0)  # fmt: skip
    fit(new_model(recipe, data), data, recipe)
    return folder / "model.pt"


def serve_both(path: Path) -> None:
    """The child: the app (as the command line builds it) and an image echo on free ports; prints both URLs."""
    import gradio as gr

    from eva_helpers.app.local import load_local
    from eva_helpers.app.ui import build_ui, serve

    with gr.Blocks(analytics_enabled=False) as echo_demo:
        image, label, gallery = gr.Image(type="filepath"), gr.Label(), gr.Gallery(format="png")
        gr.Button().click(lambda p: ({"echo": 1.0}, [p]), image, [label, gallery], api_name="echo")
    url, _ = serve(demo=build_ui(app=load_local(model_path=path, progress=False)), block=False, port=None)
    echo_url, _ = serve(demo=echo_demo, block=False, port=None)
    print(f"SERVING {url} {echo_url}", flush=True)
    echo_demo.block_thread()


def new_images(*, source: Path | None, size: int, n: int, folder: Path) -> list[Path]:
    """n PNG files of the source image (or a generated one), each with one pixel changed: n different images."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if source is not None:
        with Image.open(source) as im:
            base = np.asarray(im.convert("RGB"))
    else:
        base = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    paths = []
    for i in range(n):
        pixels = base.copy()
        pixels[(i // base.shape[1]) % base.shape[0], i % base.shape[1]] ^= np.uint8(1 + i // base.size)
        paths.append(folder / f"image_{i:04d}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def alternate(fns: dict, images: list[Path], *, warmup: int) -> dict[str, list[float]]:
    """Each fn(image) on each image, the fns alternating call by call; milliseconds, after `warmup` untimed rounds."""
    times: dict[str, list[float]] = {key: [] for key in fns}
    for i, image in enumerate(images):
        for key, fn in fns.items():
            took = ms(lambda fn=fn, image=image: fn(image))
            if i >= warmup:
                times[key].append(took)
    return times


def browser_times(*, url: str, images: list[Path], chromium: str, timeout_ms: int = 120_000) -> list[float]:
    """Milliseconds from choosing each file to its heatmap drawn, in headless Chromium (the first one untimed)."""
    from playwright.sync_api import sync_playwright

    drawn = ("(old) => { const imgs = [...document.querySelectorAll('#cams img')]; return imgs.length >= 1 && "
             "imgs[0].src !== old && imgs.every(i => i.complete && i.naturalWidth > 0); }")  # fmt: skip
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url, wait_until="networkidle", timeout=timeout_ms)
            for i, image in enumerate(images):
                old = page.eval_on_selector_all("#cams img", "imgs => imgs.length ? imgs[0].src : ''")
                t0 = time.perf_counter()
                page.locator("#image input[type=file]").set_input_files(str(image))
                page.wait_for_function(drawn, arg=old, timeout=timeout_ms)
                if i:
                    out.append((time.perf_counter() - t0) * 1000)
        finally:
            browser.close()
    return out


def summary(times: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(times), 1), "p90_ms": round(float(np.percentile(times, 90)), 1),
            "mean_ms": round(statistics.fmean(times), 1), "calls": len(times)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a model.pt (default: outputs/model.pt, else one trained now)")
    parser.add_argument("--calls", type=int, default=40, help="timed calls of each (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    parser.add_argument("--browser-calls", dest="browser_calls", type=int, default=10,
                        help="uploads timed in Chromium (default 10; 0 leaves the browser out)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in the server and here "
                        "(default: torch's own, one per core)")  # fmt: skip
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.serve:
        serve_both(Path(args.serve))
        return {}

    import gradio
    from gradio_client import Client, handle_file

    from eva_helpers.app.local import load_local
    from eva_helpers.app.service import explain_image, read_upload

    scratch = Path(tempfile.mkdtemp(prefix="app_latency_"))
    default = ROOT / "outputs" / "model.pt"
    path = Path(args.model) if args.model else default if default.is_file() else tiny_model(scratch / "run")
    source = str(path) if args.model or path == default else "a custom_resnet trained 1 epoch on 64 generated images"
    app = load_local(model_path=path, progress=False)
    size, layer = app.meta["image_size"], app.layer_names[-1]
    first = app.examples[3] if len(app.examples) > 3 else None
    rounds = args.warmup + args.calls
    images = new_images(source=first, size=size, n=3 * rounds + args.browser_calls + 1, folder=scratch / "images")
    start = {"loadavg_start": _load(), **machine(torch.device("cpu"))}

    threads = ["--threads", str(args.threads)] if args.threads else []
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(path), *threads], stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        line = ""
        while not line.startswith("SERVING"):
            line = child.stdout.readline()
            if not line:
                raise RuntimeError("the server process ended before it served; see its output above")
        url, echo_url = line.split()[1:]
        client, echo = Client(url, verbose=False), Client(echo_url, verbose=False)
        pair = {"explain": lambda im: client.predict(handle_file(im), 5, [layer], 0.5, "", api_name="/explain"),
                "echo": lambda im: echo.predict(handle_file(im), api_name="/echo")}  # fmt: skip
        times = alternate(pair, images[:rounds], warmup=args.warmup)
        times["direct"] = alternate({"direct": lambda im: explain_image(app=app, image=read_upload(im, size=size), k=5,
                                                                        layers=[layer], opacity=0.5)},
                                    images[rounds : 2 * rounds], warmup=args.warmup)["direct"]  # fmt: skip
        stop, other = threading.Event(), Client(url, verbose=False)
        count = min(MISTAKES, len(app.mistakes))

        def load() -> None:
            while not stop.is_set() and count:
                other.predict(count, True, layer, 0.5, api_name="/mistakes")

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        try:
            loaded = alternate(pair, images[2 * rounds : 3 * rounds], warmup=args.warmup)
        finally:
            stop.set()
            loader.join(timeout=120)
        times["explain_loaded"], times["echo_loaded"] = loaded["explain"], loaded["echo"]
        if args.browser_calls and Path(CHROMIUM).is_file():
            times["browser"] = browser_times(url=url, images=images[3 * rounds :], chromium=CHROMIUM)
    finally:
        child.terminate()
        child.wait(timeout=30)
    result = {"bench": "app_latency", "model": source, "image": first.name if first else "generated", "layer": layer,
              "gradio": gradio.__version__, "mistakes_asked": count, **start, "loadavg_end": _load(),
              **{key: summary(times[key]) for key in NAMES if times.get(key)}}  # fmt: skip
    result["ratio_to_echo"] = {
        "median": round(result["explain"]["median_ms"] / result["echo"]["median_ms"], 2),
        "p90": round(result["explain"]["p90_ms"] / result["echo"]["p90_ms"], 2),
        "median_loaded": round(result["explain_loaded"]["median_ms"] / result["echo_loaded"]["median_ms"], 2),
    }
    print(f"{'':42} {'median ms':>10} {'p90 ms':>8} {'mean ms':>8}")
    for key, name in NAMES.items():
        if key in result:
            s = result[key]
            print(f"{name:42} {s['median_ms']:>10} {s['p90_ms']:>8} {s['mean_ms']:>8}")
    r = result["ratio_to_echo"]
    print(f"explain / echo: median x{r['median']}, p90 x{r['p90']}; with mistakes asked, median x{r['median_loaded']}")
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
