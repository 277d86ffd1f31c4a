"""The app, headless: every endpoint through gradio_client against the package's own functions, bad input, a burst."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fakes import make_own_images
from PIL import Image
from test_app_support import free_port, serving

from eva_helpers.analysis import error_report, explain, overlay
from eva_helpers.files import save_torch
from eva_helpers.inference import load_image, predict_images, predict_logits, top_classes
from eva_helpers.models import build_model, gradcam_layers

gradio_client = pytest.importorskip("gradio_client", reason="the app extra is not installed: pip install -e .[app]")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")  # pandas 3 deprecations inside Gradio's queue


@pytest.fixture(scope="module")
def client(app):
    with serving(app) as url:
        yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    return make_own_images(tmp_path_factory.mktemp("own"))


def direct_top(app, path, k):
    """The top k of an image file straight from the package: load_image, then top_classes."""
    image = load_image(path, size=app.meta["image_size"])
    return top_classes(model=app.model, images=image[None], meta=app.meta, k=k)[0]


def direct_cam(app, path, *, layer, target, opacity):
    image = load_image(path, size=app.meta["image_size"])
    cams = explain(model=app.model, meta=app.meta, images=image[None],
                   targets={"t": [target]}, layers={layer: gradcam_layers(app.model)[layer]})  # fmt: skip
    return overlay(image=image, heatmap=cams[f"{layer} / t"][0], image_weight=1 - opacity)


def read(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def test_the_app_starts_with_examples_mistakes_and_the_report(app, app_model_path):
    assert len(app.examples) == 10 and all(p.parent == app_model_path.parent / "app_examples" for p in app.examples)
    labels = [app.classes.index(p.stem.split("_", 1)[1]) for p in app.examples]
    assert labels == list(range(10))  # one held-out image per class, in class order
    r = app.report
    assert r["n"] == 30 and r["count"] == len(app.mistakes) > 0 and 0 <= r["accuracy"] < 1
    assert np.array(r["confusion_matrix"]).sum() == 30 and list(r["per_class_accuracy"]) == app.classes
    one = error_report(logits=np.zeros((1, len(app.classes))), labels=[0], classes=app.classes)
    assert r.keys() == one.summary().keys()  # the one format: misclassified.json's (notebook 05)
    images = np.stack([m.image for m in app.mistakes])
    logits = torch.from_numpy(predict_logits(model=app.model, images=images, meta=app.meta))
    pred = logits.argmax(1).tolist()
    assert pred == [m.pred for m in app.mistakes] and all(m.pred != m.true for m in app.mistakes)
    losses = [-torch.log_softmax(row, 0)[m.true].item() for row, m in zip(logits, app.mistakes)]
    assert losses == sorted(losses, reverse=True)  # worst first
    assert [t for t, _ in app.figures] == ["Confusion matrix", "Accuracy per class", "Training curves"]


def test_the_model_card_says_what_was_trained_and_where_the_accuracy_comes_from(app):
    from eva_helpers.app.card import model_card

    card = model_card(app)
    assert "cifar10" in card and "50 training images, 30 test images" in card
    assert "2 epochs of One-Cycle SGD" in card and "custom_resnet (6,573,130 parameters)" in card
    assert (
        f"**{app.metrics['test_acc']:.2%}** test accuracy after the last epoch (2), from the run's metrics.json" in card
    )
    assert f"**{app.report['accuracy']:.2%}** recomputed from these weights on all 30 test images" in card


def test_top_k_for_k_1_5_10_is_the_package_prediction_and_k_over_10_is_refused(app, client):
    example = app.examples[4]
    for k in (1, 5, 10):
        got = client.predict(handle_file(example), k, api_name="/predict")["confidences"]
        probs = [c["confidence"] for c in got]
        assert len(got) == k and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        want = direct_top(app, example, k)
        assert [c["label"] for c in got] == [c for c, _ in want]
        assert probs == pytest.approx([p for _, p in want], abs=1e-6)
    assert sum(c["confidence"] for c in client.predict(handle_file(example), 10, api_name="/predict")["confidences"]
               ) == pytest.approx(1, abs=1e-5)  # fmt: skip
    for k in (11, 0, 2.5):
        with pytest.raises(AppError, match=f"k={k!r} is"):
            client.predict(handle_file(example), k, api_name="/predict")


def test_gradcam_for_two_layers_a_chosen_class_and_the_opacity(app, client):
    example = app.examples[2]
    pred = app.classes.index(direct_top(app, example, 1)[0][0])
    other = (pred + 1) % 10
    for opacity in (0.3, 1.0):
        top, gallery = client.predict(handle_file(example), 3, ["layer1", "layer3"], opacity, app.classes[other],
                                      api_name="/explain")  # fmt: skip
        assert top["label"] == app.classes[pred] and len(top["confidences"]) == 3
        for g in gallery:  # each picture: the image as the model saw it, a white gap, the heatmap
            picture = read(g["image"])
            assert picture.shape == (32, 66, 3) and (picture[:, 32:34] == 255).all()
            assert np.array_equal(picture[:, :32], load_image(example, size=32))
        assert [g["caption"].split(":")[0] for g in gallery] == ["layer1", "layer1", "layer3", "layer3"]
        assert f"{app.classes[other]} (your choice)" in gallery[1]["caption"]
        for g, (layer, target) in zip(gallery, [("layer1", pred), ("layer1", other), ("layer3", pred),
                                                ("layer3", other)]):  # fmt: skip
            want = direct_cam(app, example, layer=layer, target=target, opacity=opacity)
            assert np.abs(read(g["image"])[:, 34:] - want).max() <= 2, (layer, target, opacity)
    faint = client.predict(handle_file(example), 1, ["layer3"], 0.0, "", api_name="/explain")[1]
    assert len(faint) == 1 and np.abs(read(faint[0]["image"]) - read(gallery[2]["image"])).mean() > 5
    with pytest.raises(AppError, match="no Grad-CAM layer 'fc'"):
        client.predict(handle_file(example), 1, ["fc"], 0.5, "", api_name="/explain")
    with pytest.raises(AppError, match="opacity=1.5 is out of range"):
        client.predict(handle_file(example), 1, ["layer3"], 1.5, "", api_name="/explain")


def test_the_mistakes_gallery_shows_as_many_as_asked_without_running_the_model(app, client):
    calls = []
    hook = app.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        gallery = client.predict(3, False, "layer3", 0.5, api_name="/mistakes")
    finally:
        hook.remove()
    assert not calls  # computed when the app started, not per request
    assert [g["caption"] for g in gallery] == [
        f"true {app.classes[m.true]}, predicted {app.classes[m.pred]} ({m.prob:.0%})" for m in app.mistakes[:3]
    ]
    assert np.array_equal(read(gallery[0]["image"]), app.mistakes[0].image)
    assert len(client.predict(len(app.mistakes), False, "layer3", 0.5, api_name="/mistakes")) == len(app.mistakes)
    with_cam = client.predict(2, True, "layer2", 0.5, api_name="/mistakes")
    assert [g["caption"] for g in with_cam][1:3] == [f"layer2: predicted {app.classes[app.mistakes[0].pred]}",
                                                    f"layer2: true {app.classes[app.mistakes[0].true]}"]  # fmt: skip
    assert len(with_cam) == 6
    with pytest.raises(AppError, match="count=.* is out of range"):
        client.predict(len(app.mistakes) + 1, False, "layer3", 0.5, api_name="/mistakes")


def test_without_data_the_mistakes_say_why(app):
    from eva_helpers.app.service import InputError, mistakes_gallery
    from eva_helpers.app.ui import build_ui

    for kept in ([], app.mistakes[:1]):
        bare = dataclasses.replace(app, mistakes=kept, report=None, notes=["The mistakes are not shown: no data."])
        build_ui(app=bare).close()  # the page is built all the same
    with pytest.raises(InputError, match="no data"):
        mistakes_gallery(app=dataclasses.replace(bare, mistakes=[]), count=1)


def test_a_model_without_mistakes_gets_a_sentence_not_a_crash(app):
    from eva_helpers.app.service import InputError, mistakes_gallery
    from eva_helpers.app.ui import build_ui

    perfect = dataclasses.replace(app, mistakes=[], report={**app.report, "count": 0, "accuracy": 1.0})
    build_ui(app=perfect).close()
    with pytest.raises(InputError, match="No mistakes to show: the model got all 30 test images right"):
        mistakes_gallery(app=perfect, count=3)


def test_the_batch_gives_a_table_and_its_csv_and_names_the_file_that_is_not_an_image(app, client, own):
    names = ["wide photo.jpg", "sticker.png", "scan.jpg", "tiny.gif"]
    table, csv_path, skipped = client.predict([handle_file(own / n) for n in [*names, "notes.txt"]],
                                              api_name="/batch")  # fmt: skip
    want = predict_images(model=app.model, meta=app.meta, images=[own / n for n in names], k=1)
    assert table["headers"] == ["file", "top class", "probability"]
    assert [row[:2] for row in table["data"]] == [[n, w["top"][0]["class"]] for n, w in zip(names, want)]
    assert [row[2] for row in table["data"]] == pytest.approx([w["top"][0]["prob"] for w in want], abs=1e-4)
    lines = Path(csv_path).read_text().splitlines()
    assert lines[0] == "file,top class,probability" and len(lines) == 5
    assert lines[1].split(",")[:2] == ["wide photo.jpg", want[0]["top"][0]["class"]]
    assert "notes.txt is not an image" in skipped
    with pytest.raises(AppError, match="None of the files could be used: notes.txt is not an image"):
        client.predict([handle_file(own / "notes.txt")], api_name="/batch")
    with pytest.raises(AppError, match="No files were given"):
        client.predict([], api_name="/batch")


def test_bad_input_gets_a_message_naming_it_and_the_server_carries_on(app, client, tmp_path, own):
    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("1", (8000, 6000)).save(tmp_path / "huge.png")  # 48 megapixels in a few KB
    (tmp_path / "cut.jpg").write_bytes((own / "wide photo.jpg").read_bytes()[:2000])  # a photo cut short
    (tmp_path / "big.png").write_bytes(os.urandom(31 * 2**20))  # over the 30 MB upload limit
    cases = [(own / "notes.txt", "notes.txt is not an image"), (tmp_path / "empty.png", "empty.png is empty"),
             (tmp_path / "huge.png", r"huge.png has 8000x6000 pixels \(48.0 megapixels\), more than the 40"),
             (tmp_path / "cut.jpg", "cut.jpg cannot be decoded"), (None, "No image was given")]  # fmt: skip
    for path, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(None if path is None else handle_file(path), 3, api_name="/predict")
        assert client.predict(handle_file(app.examples[0]), 1, api_name="/predict")["label"]  # still serving
    with pytest.raises(ValueError, match="exceeds the maximum file size of 31457280 bytes"):  # the client checks first
        client.predict(handle_file(tmp_path / "big.png"), 3, api_name="/predict")
    refused = httpx.post(client.upload_url, files=[("files", ("big.png", (tmp_path / "big.png").read_bytes()))])
    assert refused.status_code == 413  # and the server refuses it itself
    assert client.predict(handle_file(app.examples[0]), 1, api_name="/predict")["label"]


def test_a_burst_from_eight_clients_each_gets_the_answer_for_its_own_image(app, client, own):
    images = [*app.examples[:6], own / "wide photo.jpg", own / "scan.jpg"]
    want = [direct_top(app, p, 3) for p in images]
    url, results, errors = client.src, {}, []

    def visitor(i):
        try:
            c = Client(url, verbose=False)
            for j in range(5):
                if j % 2:  # Grad-CAM hangs hooks on the shared model: its requests interleave with the others
                    top = c.predict(handle_file(images[i]), 3, ["layer2"], 0.5, "", api_name="/explain")[0]
                else:
                    top = c.predict(handle_file(images[i]), 3, api_name="/predict")
                results[(i, j)] = [(x["label"], x["confidence"]) for x in top["confidences"]]
        except Exception as e:  # reported below, with the visitor
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(results) == 40
    for (i, _), got in results.items():
        assert [c for c, _ in got] == [c for c, _ in want[i]], i
        assert [p for _, p in got] == pytest.approx([p for _, p in want[i]], abs=1e-6), i


def test_concurrent_grad_cams_are_the_serial_ones(app, own):
    """Grad-CAM hangs hooks on the shared model, so without AppModel.lock one visitor's forward pass feeds
    another's hooks. Eight visitors at once, three requests each, must get the heatmaps one visitor alone gets."""
    from eva_helpers.app.service import explain_image, read_upload

    paths = [*app.examples[:6], own / "wide photo.jpg", own / "scan.jpg"]
    images = [read_upload(p, size=app.meta["image_size"]) for p in paths]
    ask = dict(k=3, layers=app.layer_names, opacity=1.0)  # opacity 1: the heatmap alone, not blended
    serial = [explain_image(app=app, image=image, **ask) for image in images]
    start, results, errors = threading.Barrier(len(images)), {}, []

    def visitor(i):
        try:
            start.wait()
            for r in range(3):
                results[i, r] = explain_image(app=app, image=images[i], **ask)
        except Exception as e:  # reported below, with the visitor
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(results) == 3 * len(images)
    for (i, r), (top, gallery) in results.items():
        assert top == serial[i][0], (i, r)
        for (got, caption), (want, _) in zip(gallery, serial[i][1], strict=True):
            assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, f"visitor {i}, request {r}: {caption}"


def test_a_model_file_of_the_wrong_shape_or_with_missing_keys_is_refused_at_start(app, tmp_path):
    from eva_helpers.app.bundle import load_weights, save_weights
    from eva_helpers.app.local import load_local

    wrong = build_model(name="resnet18", num_classes=10).state_dict()
    save_torch(obj={"model": wrong, "meta": app.meta}, path=tmp_path / "wrong.pt")
    run = subprocess.run([sys.executable, "-m", "eva_helpers.app", "--model", str(tmp_path / "wrong.pt")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert run.returncode == 2 and "wrong.pt" in run.stderr and "do not fit a custom_resnet" in run.stderr
    weights = dict(app.model.state_dict())
    weights.pop("fc.bias")
    save_torch(obj={"model": weights, "meta": app.meta}, path=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="missing.pt.*fc.bias"):
        load_local(model_path=tmp_path / "missing.pt")
    save_weights(model=build_model(name="resnet18", num_classes=10), path=tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="model.safetensors do not fit a custom_resnet"):
        load_weights(path=tmp_path / "model.safetensors", meta=app.meta)
    (tmp_path / "pickle.safetensors").write_bytes((tmp_path / "wrong.pt").read_bytes())
    with pytest.raises(ValueError, match="pickle.safetensors cannot be read as safetensors"):
        load_weights(path=tmp_path / "pickle.safetensors", meta=app.meta)


def test_the_command_serves_on_localhost_prints_its_url_and_says_share_is_public(app_model_path):
    helped = subprocess.run([sys.executable, "-m", "eva_helpers.app", "--help"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)  # fmt: skip
    assert "makes the app public" in " ".join(helped.stdout.split())
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "eva_helpers.app", "--model", str(app_model_path), "--port",
                             str(port), "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT)  # fmt: skip
    try:
        deadline, lines = time.monotonic() + 240, []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("The app is at") or not line:
                break
        assert lines[-1].startswith(f"The app is at http://127.0.0.1:{port}/"), "".join(lines)
        got = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(handle_file(
            app_model_path.parent / "app_examples" / "00_airplane.png"), 2, api_name="/predict")  # fmt: skip
        assert len(got["confidences"]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_gradio_is_imported_by_the_ui_only():
    code = ("import sys, eva_helpers.app, eva_helpers.app.service, eva_helpers.app.local, eva_helpers.app.bundle, "
            "eva_helpers.app.card; assert 'gradio' not in sys.modules, 'gradio imported'")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_the_latency_benchmark_times_the_app_against_an_image_echo_quiet_loaded_and_in_a_browser(app_model_path,
                                                                                               capsys):  # fmt: skip
    from scripts import load_script

    bench = load_script(ROOT / "benchmarks" / "app_latency.py")
    result = bench.main(["--model", str(app_model_path), "--calls", "3", "--warmup", "1", "--browser-calls", "2"])
    keys = ["explain", "echo", "explain_loaded", "echo_loaded", "direct"] + (
        ["browser"] if Path(bench.CHROMIUM).is_file() else []
    )
    for key in keys:
        want = 2 if key == "browser" else 3
        assert result[key]["calls"] == want and 0 < result[key]["median_ms"] <= result[key]["p90_ms"] + 1e-9, key
    r = result["ratio_to_echo"]
    assert r["median"] == round(result["explain"]["median_ms"] / result["echo"]["median_ms"], 2)
    assert r["median_loaded"] == round(result["explain_loaded"]["median_ms"] / result["echo_loaded"]["median_ms"], 2)
    assert result["mistakes_asked"] == len(app_mistakes(app_model_path)) and result["cpu_count"] >= 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith('{"bench": "app_latency"')


def app_mistakes(path):
    from eva_helpers.app.local import load_local

    return load_local(model_path=path, progress=False).mistakes[:100]


def test_every_timed_call_sends_an_image_the_app_has_not_seen(tmp_path):
    from scripts import load_script

    bench = load_script(ROOT / "benchmarks" / "app_latency.py")
    paths = bench.new_images(source=None, size=32, n=50, folder=tmp_path)
    pixels = {np.asarray(Image.open(p)).tobytes() for p in paths}
    assert len(pixels) == 50  # so that no call is answered from the kept answers


def test_for_200_classes_the_model_tab_lists_the_worst_classes_and_confused_pairs_instead_of_the_matrix():
    from eva_helpers.app.card import model_card
    from eva_helpers.app.local import choose_examples, figures
    from eva_helpers.app.service import AppModel

    classes = [f"n{i:03d}" for i in range(200)]
    meta = {"model": "resnet18", "num_classes": 200, "classes": classes, "mean": [0.5] * 3, "std": [0.25] * 3,
            "image_size": 64, "test_split": "validation", "data": {"dataset": "tinyimagenet"}, "epochs": 1}  # fmt: skip
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(200), 3)
    report = error_report(logits=rng.normal(size=(600, 200)), labels=labels, classes=classes, split="validation")
    app = AppModel(model=build_model(name="resnet18", num_classes=200), meta=meta)
    app.report = report.summary()
    assert [t for t, _ in figures(app=app, report=report)] == ["Accuracy per class"]  # no 200x200 matrix
    card = model_card(app)
    assert "**The 10 worst classes** (validation accuracy)" in card and "**The most-confused pairs**" in card
    assert "(train and val merged, then split 70/30 per class)" in card
    assert choose_examples(labels=labels, num_classes=200) == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]  # first 10 classes


def test_a_repeated_image_or_a_new_opacity_is_blended_without_the_model(app):
    from eva_helpers.app.service import MAX_ANSWERS, explain_image, mistakes_gallery, read_upload, warm_up

    warm_up(app=app)  # as build_ui does: the examples and the mistakes, answered before any visitor comes
    calls = []
    hook = app.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        example = read_upload(app.examples[3], size=app.meta["image_size"])
        top, gallery = explain_image(app=app, image=example, k=3, layers=app.layer_names[-1:], opacity=0.5)
        _, faint = explain_image(app=app, image=example, k=3, layers=app.layer_names[-1:], opacity=0.1)
        with_cam = mistakes_gallery(app=app, count=2, gradcam=True, layer=app.layer_names[0], opacity=0.7)
        assert not calls  # an example click, a new opacity, the mistakes' heatmaps: all computed at start
        assert np.abs(gallery[0][0].astype(int) - faint[0][0].astype(int)).mean() > 5  # but blended anew
        want_top = top_classes(model=app.model, images=example[None], meta=app.meta, k=3)[0]
        assert [c for c, _ in top] == [c for c, _ in want_top]
        assert [p for _, p in top] == pytest.approx([p for _, p in want_top], abs=1e-6)
        m = app.mistakes[1]
        want = explain(model=app.model, meta=app.meta, images=m.image[None], targets={"t": [m.true]},
                       layers={app.layer_names[0]: gradcam_layers(app.model)[app.layer_names[0]]})  # fmt: skip
        blended = overlay(image=m.image, heatmap=next(iter(want.values()))[0], image_weight=0.3)
        assert np.abs(with_cam[5][0].astype(int) - blended).max() <= 1  # its heatmap for the true class
        calls.clear()
        other = example[::-1].copy()  # a new image runs the model once, then is answered from memory
        explain_image(app=app, image=other, k=3, layers=app.layer_names[-1:], opacity=0.5)
        assert len(calls) == 1
        explain_image(app=app, image=other, k=2, layers=app.layer_names[-1:], opacity=0.9)
        assert len(calls) == 1
        explain_image(app=app, image=other, k=2, layers=app.layer_names, opacity=0.9)  # other layers: a new pass
        assert len(calls) == 2
    finally:
        hook.remove()
    assert len(app.answers) <= MAX_ANSWERS


def test_the_model_events_share_one_concurrency_group_and_the_cache_is_cleaned(app):
    from eva_helpers.app.ui import CACHE_SECONDS, MODEL_GROUP, build_ui

    demo = build_ui(app=app)
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    groups = {f.api_name: f.concurrency_id for f in fns}
    assert {groups[name] for name in ("predict", "explain", "batch", "mistakes")} == {MODEL_GROUP}
    assert demo.delete_cache == (CACHE_SECONDS, CACHE_SECONDS)


def test_the_title_names_the_data_the_network_and_the_accuracy_and_the_examples_their_class(app):
    from eva_helpers.app.card import page_title
    from eva_helpers.app.ui import build_ui, example_label

    title = f"CIFAR-10 classifier · ResNet-9 · {app.report['accuracy']:.1%} test accuracy"
    assert page_title(app) == title and build_ui(app=app).title == title
    assert [example_label(p) for p in app.examples] == app.classes[: len(app.examples)]
    folder = dataclasses.replace(app, meta={**app.meta, "data": {"dataset": "imagefolder", "data_dir": "/x/flowers"}},
                                 report=None)  # fmt: skip
    assert page_title(folder) == f"flowers classifier · ResNet-9 · {app.meta['test_acc']:.1%} test accuracy"


def test_a_phone_photo_over_the_pixel_limit_is_decoded_smaller_not_refused(app, client, tmp_path):
    from eva_helpers.app.service import InputError, read_upload
    from eva_helpers.images import to_rgb

    photo = np.zeros((1200, 1600, 3), np.uint8)
    photo[:, :800, 0] = 255  # red on the left, blue on the right
    photo[:, 800:, 2] = 255
    Image.fromarray(photo).save(tmp_path / "photo.jpg", quality=95)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    assert to_rgb(tmp_path / "photo.jpg", draft=(400, 300)).shape == (300, 400, 3)  # decoded at a quarter
    small = read_upload(tmp_path / "photo.jpg", size=32, max_pixels=200_000)  # 1.92 MP: a quarter fits
    full = load_image(tmp_path / "photo.jpg", size=32)
    assert np.abs(small.astype(int) - full).mean() < 3  # the same picture the model would see from the full decode
    with pytest.raises(InputError, match="1600x1200 pixels"):
        read_upload(tmp_path / "photo.png", size=32, max_pixels=200_000)  # a PNG cannot be decoded smaller
    with pytest.raises(InputError, match="1600x1200 pixels"):
        read_upload(tmp_path / "photo.jpg", size=32, max_pixels=20_000)  # even an eighth is too many
    Image.new("RGB", (8000, 6000), (200, 30, 30)).save(tmp_path / "48mp.jpg")  # a 48-megapixel photo, through the app
    assert client.predict(handle_file(tmp_path / "48mp.jpg"), 3, api_name="/predict")["label"]


@pytest.mark.parametrize("method", ["Grad-CAM++", "Eigen-CAM", "Layer-CAM", "Score-CAM"])
def test_the_other_cam_methods_are_pytorch_grad_cams_own(app, client, method):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from eva_helpers.app.service import explain_image, read_upload
    from eva_helpers.inference import normalize

    image = read_upload(app.examples[5], size=32)
    top, gallery = explain_image(app=app, image=image, k=2, layers=["layer2"], opacity=1.0, method=method)
    assert gallery[0][1].endswith(f", {method})") and top[0][0] in gallery[0][1]
    cls = {"Grad-CAM++": "GradCAMPlusPlus", "Eigen-CAM": "EigenCAM", "Layer-CAM": "LayerCAM", "Score-CAM": "ScoreCAM"}
    model = app.model.eval()
    with getattr(pytorch_grad_cam, cls[method])(model=model, target_layers=[model.layer2]) as cam:
        theirs = cam(input_tensor=normalize(images=image[None], mean=app.meta["mean"], std=app.meta["std"]),
                     targets=[ClassifierOutputTarget(app.classes.index(top[0][0]))])[0]  # fmt: skip
    model.zero_grad(set_to_none=True)
    assert np.abs(gallery[0][0][:, 34:].astype(int) - overlay(image=image, heatmap=theirs, image_weight=0.0)).max() <= 2
    if method == "Layer-CAM":  # through the client too, named as the dropdown names it
        got = client.predict(handle_file(app.examples[5]), 2, ["layer2"], 1.0, "", method, api_name="/explain")[1]
        assert got[0]["caption"].endswith(", Layer-CAM)")
        with pytest.raises(AppError, match="no CAM method"):
            client.predict(handle_file(app.examples[5]), 2, ["layer2"], 1.0, "", "Magic-CAM", api_name="/explain")
