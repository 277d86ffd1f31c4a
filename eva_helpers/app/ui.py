"""The Gradio layout: tabs for one image (top-k, Grad-CAM), many images (a table, a CSV), mistakes and the model.

Each event calls a function of service with the visitor's values; what a visitor did wrong comes back as
gr.Error (a message in the app) and the server goes on serving. The events take the uploads unprocessed
(preprocess=False) so that the app opens every file itself: the pixel limit is checked before decoding,
and a file that is not an image is named.
"""

from __future__ import annotations

import functools
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
import torch

from ..analysis import CAM_METHODS
from ..device import cpu_quota
from ..validate import whole
from .card import model_card, page_title
from .service import (
    AppModel,
    InputError,
    explain_image,
    mistakes_gallery,
    predict_files,
    read_upload,
    rows_csv,
    top_k,
    warm_up,
)

MAX_FILE_SIZE = "30mb"  # Gradio refuses larger uploads before they reach the app (a 48-MP phone JPEG is ~15 MB)
# Every event that uses the model shares one concurrency group: two at a time, so that one request decodes its
# upload while another holds the model (AppModel.lock), instead of up to 4 per event queueing on the lock.
MODEL_GROUP, MODEL_CONCURRENCY = "model", 2
# Heatmaps and images of a few pixels a side, drawn as sharp blocks rather than browser-smoothed blur
CSS = "#cams img, #image img, #mistakes img { image-rendering: pixelated; }"
CACHE_SECONDS = 3600  # Gradio's cache of uploads and results, and the CSVs, are deleted after an hour
NO_CLASS = ("(none)", "")  # the class dropdown's empty choice


def _shown(fn):
    """Turn InputError into gr.Error, so the visitor reads the message and the server carries on."""

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except InputError as e:
            raise gr.Error(str(e), print_exception=False) from e

    return wrapper


def _file(value: Any) -> tuple[str | None, str | None]:
    """(path on the server, the visitor's file name) of an unprocessed upload: a FileData dict, or a path."""
    if value is None:
        return None, None
    if isinstance(value, (str, Path)):
        return str(value), Path(value).name
    get = value.get if isinstance(value, dict) else lambda k, d=None: getattr(value, k, d)
    path = get("path")
    return path, get("orig_name") or (Path(path).name if path else None)


def example_label(path: Path) -> str:
    """An example's caption from its file name: 03_cat.png -> 'cat' (app.local.write_examples names them)."""
    return re.sub(r"^\d+_", "", Path(path).stem).replace("_", " ")


def _upload(app: AppModel, value: Any):
    path, name = _file(value)
    return read_upload(path, size=app.meta["image_size"], name=name)


def build_ui(*, app: AppModel, title: str | None = None) -> gr.Blocks:
    """The app's Blocks for `app` (one prediction and one Grad-CAM run first, to warm up); serve it with serve()."""
    classes, layers = app.classes, app.layer_names
    title = title or page_title(app)
    csv_dir = Path(tempfile.mkdtemp(prefix="eva_app_csv_"))  # one uniquely named file per request
    warm_up(app=app)

    @_shown
    def predict(image, k):
        return dict(top_k(app=app, image=_upload(app, image), k=k))

    @_shown
    def explain(image, k, chosen_layers, opacity, also, method="Grad-CAM"):
        top, gallery = explain_image(app=app, image=_upload(app, image), k=k, layers=chosen_layers, opacity=opacity,
                                     also_class=also or None, method=method)  # fmt: skip
        return dict(top), gallery

    def clear():
        return None, []

    @_shown
    def answer(image, k, chosen_layers, opacity, also, method):  # a new image, an example, or a new opacity
        return clear() if image is None else explain(image, k, chosen_layers, opacity, also, method)

    @_shown
    def batch(files):
        rows, problems = predict_files(app=app, files=[_file(f) for f in files or []])
        for problem in problems:
            gr.Warning(problem)
        for old in csv_dir.glob("predictions-*.csv"):  # Gradio has served them (it copies them into its cache)
            if time.time() - old.stat().st_mtime > CACHE_SECONDS:
                old.unlink(missing_ok=True)
        path = csv_dir / f"predictions-{uuid.uuid4().hex[:8]}.csv"
        path.write_text(rows_csv(rows), encoding="utf-8")
        skipped = "\n".join(f"- {p}" for p in problems)
        return [[r["file"], r["top class"], r["probability"]] for r in rows], str(path), skipped

    @_shown
    def mistakes(count, gradcam, layer, opacity):
        return mistakes_gallery(app=app, count=count, gradcam=bool(gradcam), layer=layer, opacity=opacity)

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as demo:
        gr.Markdown(f"# {title}\nUpload an image or pick an example: the model names its top classes, and Grad-CAM "
                    "shows where it looked. The other tabs show several images at once, the held-out images it gets "
                    "wrong, and how it was trained.")  # fmt: skip
        model_event = {"preprocess": False, "concurrency_id": MODEL_GROUP, "concurrency_limit": MODEL_CONCURRENCY}
        with gr.Tab("One image"):
            # Image and results first, side by side; on a phone they stack, so the answer sits right under the image.
            with gr.Row(equal_height=False):
                with gr.Column():
                    image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"], label="Image",
                                     format="png", height=260, elem_id="image")  # fmt: skip
                    with gr.Row():
                        predict_button = gr.Button("Top classes", elem_id="predict")
                        explain_button = gr.Button("Top classes + Grad-CAM", variant="primary", elem_id="explain")
                with gr.Column():
                    top = gr.Label(label="Top classes", elem_id="top")
                    cams = gr.Gallery(label="Grad-CAM: the image as the model saw it, and where it looked", columns=1,
                                      format="png", object_fit="contain", height="auto", elem_id="cams")  # fmt: skip
            if app.examples:
                gr.Examples(examples=[[str(p)] for p in app.examples], inputs=[image], examples_per_page=10,
                            example_labels=[example_label(p) for p in app.examples],
                            label="Examples: one held-out image per class", elem_id="examples")  # fmt: skip
            with gr.Accordion("Settings", open=False):
                k = gr.Slider(1, app.max_k, value=min(5, app.max_k), step=1, label="Top classes (k)")
                chosen = gr.Dropdown(choices=layers, value=[layers[-1]], multiselect=True, label="Grad-CAM layers",
                                     info="shallowest first; the deepest is the most class-specific")  # fmt: skip
                opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Grad-CAM opacity")
                also = gr.Dropdown(choices=[NO_CLASS, *[(c, c) for c in classes]], value="",
                                   label="Also Grad-CAM for class",
                                   info="beside the predicted class, e.g. the true one")  # fmt: skip
                method = gr.Dropdown(choices=list(CAM_METHODS), value=CAM_METHODS[0], label="CAM method",
                                     info="Grad-CAM is fastest; Score-CAM runs the model once per channel")  # fmt: skip
        asked = [image, k, chosen, opacity, also, method]
        predict_button.click(predict, [image, k], top, api_name="predict", **model_event)
        explain_button.click(explain, asked, [top, cams], api_name="explain", **model_event)
        # A new image (an upload, an example) clears the old answer at once, then answers; a new opacity re-blends
        # the kept heatmaps. Neither is an API endpoint: /explain is.
        image.change(clear, None, [top, cams], queue=False, api_name=False).then(
            answer, asked, [top, cams], api_name=False, **model_event)  # fmt: skip
        opacity.release(answer, asked, [top, cams], api_name=False, **model_event)

        with gr.Tab("Many images"):
            files = gr.Files(label="Image files", file_count="multiple", elem_id="files")
            batch_button = gr.Button("Classify them all", variant="primary")
            table = gr.Dataframe(headers=["file", "top class", "probability"], label="Top class of each file",
                                 interactive=False)  # fmt: skip
            csv_file = gr.File(label="The table as CSV", interactive=False)
            skipped = gr.Markdown()  # the files left out, and why
        batch_button.click(batch, [files], [table, csv_file, skipped], api_name="batch", **model_event)

        with gr.Tab("Mistakes"):
            r = app.report
            gr.Markdown(f"{r['count']:,} of the {r['n']:,} {r['split']} images are misclassified; the "
                        f"{len(app.mistakes)} with the highest loss are kept, worst first (computed once, when the "
                        "app started or was exported)." if r else " ".join(app.notes))  # fmt: skip
            n = len(app.mistakes)  # a slider needs maximum > minimum, even with no mistakes or one
            count = gr.Slider(1, max(2, n), value=min(10, max(1, n)), step=1, label="How many", interactive=n > 1)
            with gr.Row():
                with_cam = gr.Checkbox(value=False, label="With Grad-CAM for the predicted and the true class")
                mistake_layer = gr.Dropdown(choices=layers, value=layers[-1], label="Grad-CAM layer")
                mistake_opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Grad-CAM opacity")
            mistakes_button = gr.Button("Show the mistakes", variant="primary")
            gallery = gr.Gallery(value=mistakes_gallery(app=app, count=min(10, n)) if n else None,
                                 label="Misclassified", columns=6, format="png", object_fit="contain", height="auto",
                                 elem_id="mistakes")  # fmt: skip
        mistakes_button.click(mistakes, [count, with_cam, mistake_layer, mistake_opacity], gallery,
                              api_name="mistakes", **model_event)  # fmt: skip

        with gr.Tab("The model"):
            gr.Markdown(model_card(app))
            for name, picture in app.figures:
                gr.Image(value=picture, label=name, interactive=False, format="png")
    return demo


def launch_kwargs(*, port: int | None = None, share: bool = False, host: str | None = "127.0.0.1",
                  max_file_size: str | int = MAX_FILE_SIZE) -> dict[str, Any]:  # fmt: skip
    """Blocks.launch's arguments: localhost unless told otherwise (host=None: $GRADIO_SERVER_NAME, as on a Space,
    else localhost), the upload limit, no server-side rendering; share=True makes the app public."""
    return {"server_name": host, "server_port": port, "share": share, "max_file_size": max_file_size,
            "ssr_mode": False, "show_error": False, "css": CSS}  # fmt: skip


def app_threads() -> int:
    """torch's threads for the app: the container's CPU quota where it has one (a Space), else 1.

    One visitor's image is a small batch: more threads than that mostly wait for each other, and with other
    visitors' requests queued, one thread answers fastest (benchmarks/README.md, app latency).
    """
    return cpu_quota() or 1


def serve(*, demo: gr.Blocks, block: bool = True, threads: int | None = None, **kwargs: Any) -> tuple[str, str | None]:
    """Queue, serve, print and return the URLs; `threads` sets torch's thread count (None: left as it is).

    kwargs go to launch_kwargs (port, share, host, max_file_size); block=False returns while it serves.
    Every event that uses the model is in one concurrency group of MODEL_CONCURRENCY.
    """
    if threads is not None:
        torch.set_num_threads(whole("threads", threads, low=1, hint="1, or the CPUs the app may use"))
    demo.queue(default_concurrency_limit=MODEL_CONCURRENCY, max_size=256)
    _, local_url, share_url = demo.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(**kwargs))
    print(f"The app is at {local_url}" + (f" and, public, at {share_url}" if share_url else "")
          + (" (Ctrl+C stops it)" if block else ""), flush=True)  # fmt: skip
    if block:
        demo.block_thread()
    return local_url, share_url
