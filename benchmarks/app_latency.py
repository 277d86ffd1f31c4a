"""The app's latency: one prediction with Grad-CAM through gradio_client, the same called in Python, and an echo.

    python benchmarks/app_latency.py                       # outputs/model.pt if it exists, else a model trained now
    python benchmarks/app_latency.py --model M --calls 100

All in one run, on localhost, the servers in a child process (a client does not share the server's GIL):
(a) the app's /explain endpoint (top 5 and Grad-CAM of the deepest layer) through gradio_client as a script
would call it: the image uploaded, the Grad-CAM image downloaded; (b) the same with the download left out
(download_files=False); (c) the same service.explain_image call made directly in Python, decoding the file
included; (d) a Gradio function that returns its text input, through gradio_client: Gradio's own floor.
Prints a table, then as its last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
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

NAMES = {"client_explain": "top 5 + Grad-CAM via gradio_client", "client_explain_no_download": "the same, no download",
         "direct_explain": "the same, called in Python", "client_echo": "echo via gradio_client"}  # fmt: skip


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


def app_model(path: Path):
    from eva_helpers.app.service import AppModel
    from eva_helpers.model_file import load_trained

    model, meta = load_trained(checkpoint=path, device="cpu")
    return AppModel(model=model, meta=meta)


def serve_both(path: Path) -> None:
    """The child: the app and an echo app on free ports; prints both URLs, serves until it is terminated."""
    import gradio as gr

    from eva_helpers.app.ui import build_ui, serve

    with gr.Blocks(analytics_enabled=False) as echo_demo:
        text_in, text_out = gr.Textbox(), gr.Textbox()
        gr.Button().click(lambda s: s, text_in, text_out, api_name="echo")
    url, _ = serve(demo=build_ui(app=app_model(path)), block=False, port=None)
    echo_url, _ = serve(demo=echo_demo, block=False, port=None)
    print(f"SERVING {url} {echo_url}", flush=True)
    echo_demo.block_thread()


def timed(fn, *, calls: int, warmup: int) -> list[float]:
    """Milliseconds of each of `calls` calls of fn(), after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(ms), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1),
            "mean_ms": round(statistics.fmean(ms), 1), "calls": len(ms)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a model.pt (default: outputs/model.pt, else one trained now)")
    parser.add_argument("--calls", type=int, default=40, help="timed calls of each (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
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

    from eva_helpers.app.service import explain_image, read_upload

    scratch = Path(tempfile.mkdtemp(prefix="app_latency_"))
    default = ROOT / "outputs" / "model.pt"
    path = Path(args.model) if args.model else default if default.is_file() else tiny_model(scratch / "run")
    source = str(path) if args.model or path == default else "a custom_resnet trained 1 epoch on 64 generated images"
    app = app_model(path)
    size, layer = app.meta["image_size"], app.layer_names[-1]
    examples = sorted((path.parent / "app_examples").glob("*.png"))
    image = examples[3] if len(examples) > 3 else scratch / "image.png"
    if not examples:
        from PIL import Image

        Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(image)
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
        clients = {"client_explain": Client(url, verbose=False),
                   "client_explain_no_download": Client(url, verbose=False, download_files=False)}  # fmt: skip
        times = {key: timed(lambda c=c: c.predict(handle_file(image), 5, [layer], 0.5, "", api_name="/explain"),
                            calls=args.calls, warmup=args.warmup) for key, c in clients.items()}  # fmt: skip
        times["direct_explain"] = timed(lambda: explain_image(app=app, image=read_upload(image, size=size), k=5,
                                                              layers=[layer], opacity=0.5),
                                        calls=args.calls, warmup=args.warmup)  # fmt: skip
        echo = Client(echo_url, verbose=False)
        times["client_echo"] = timed(lambda: echo.predict("hello", api_name="/echo"), calls=args.calls,
                                     warmup=args.warmup)  # fmt: skip
    finally:
        child.terminate()
        child.wait(timeout=30)
    result = {"bench": "app_latency", "model": source, "image": image.name, "layer": layer,
              "gradio": gradio.__version__, **start, "loadavg_end": _load(),
              **{key: summary(times[key]) for key in NAMES}}  # fmt: skip
    result["client_minus_direct_median_ms"] = round(result["client_explain"]["median_ms"]
                                                    - result["direct_explain"]["median_ms"], 1)  # fmt: skip
    print(f"{'':36} {'median ms':>10} {'p95 ms':>8} {'mean ms':>8}")
    for key, name in NAMES.items():
        s = result[key]
        print(f"{name:36} {s['median_ms']:>10} {s['p95_ms']:>8} {s['mean_ms']:>8}")
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
