"""Shared fixtures: the real data beside the project (skipped when absent), and the model the app's tests serve."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder ../shared/data with the real CIFAR-10 and Tiny ImageNet zips, or skip."""
    if not (SHARED_DATA / "cifar10-jpeg.zip").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def app_model_path(tmp_path_factory) -> Path:
    """model.pt (and metrics.json) of a custom ResNet trained 2 epochs on a generated CIFAR-10, once a session.

    The data folder stays where model.pt says it is, so the app finds the test split (30 images) itself.
    """
    from fakes import make_cifar10_batches

    from eva_helpers.recipe import load_recipe
    from eva_helpers.train import run

    root = tmp_path_factory.mktemp("app_run")
    data = make_cifar10_batches(root / "data", n_train_per_class=5, n_test_per_class=3, seed=0)
    recipe = load_recipe(data_dir=str(data), out_dir=str(root / "out"), download=False, epochs=2, peak_epoch=1,
                           batch_size=10, max_lr=0.02, progress=False, precision="fp32",
                           channels_last=False)  # fmt: skip
    return Path(run(recipe).paths["model"])


@pytest.fixture(scope="session")
def app(app_model_path):
    """The app's model for app_model_path (app.local.load_local): its examples, mistakes and report, made once."""
    from eva_helpers.app.local import load_local

    return load_local(model_path=app_model_path, progress=False)
