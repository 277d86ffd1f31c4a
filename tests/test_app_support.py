"""Helpers of the app's tests (no tests here): a model trained in seconds on generated data, a running app."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from fakes import make_cifar10_batches

_RUNS: dict[str, Path] = {}


def tiny_model(tmp_path_factory) -> Path:
    """model.pt (and metrics.json) of a custom ResNet trained 2 epochs on a generated CIFAR-10, once a session.

    The data folder stays where model.pt says it is, so the app finds the test split (30 images) itself.
    """
    if "model" not in _RUNS:
        from eva_helpers.cli import recipe_params, run

        root = tmp_path_factory.mktemp("app_run")
        data = make_cifar10_batches(root / "data", n_train_per_class=5, n_test_per_class=3, seed=0)
        params = recipe_params(data_dir=str(data), out_dir=str(root / "out"), download=False, epochs=2, peak_epoch=1,
                               batch_size=10, max_lr=0.02, progress=False, precision="fp32",
                               channels_last=False)  # fmt: skip
        _RUNS["model"] = Path(run(params).paths["model"])
    return _RUNS["model"]


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app, **kwargs):
    """The app's UI served on a free localhost port while the block runs; yields its URL."""
    from eva_helpers.app.ui import build_ui, serve

    demo = build_ui(app=app)
    try:
        url, _ = serve(demo=demo, block=False, port=free_port(), **kwargs)
        yield url
    finally:
        demo.close()
