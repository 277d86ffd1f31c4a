"""The recipe: one frozen definition of every parameter, checked where it enters, each default written once."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eva_helpers.files import project_root
from eva_helpers.recipe import (
    SPEC,
    TRAIN_PARAMS,
    OptimRecipe,
    Recipe,
    check_param,
    check_params,
    load_recipe,
    read_config,
)

ROOT = Path(__file__).resolve().parents[1]


def test_papermill_ints_and_strings_are_coerced():
    got = check_params({"max_lr": 1, "epochs": "24", "peak_epoch": 5.0, "flip": "false", "nesterov": 1,
                        "weight_decay": "5e-4", "cutout": "None"})  # fmt: skip
    assert (got.optim.max_lr, got.optim.epochs, got.optim.peak_epoch) == (1.0, 24, 5)
    assert (got.augment.flip, got.optim.nesterov, got.optim.weight_decay, got.augment.cutout) == (
        False,
        True,
        5e-4,
        None,
    )
    assert type(got.optim.max_lr) is float and type(got.optim.epochs) is int


def test_a_notebooks_globals_give_their_parameters_and_the_rest_default():
    namespace = {"epochs": 3, "peak_epoch": 1, "In": [], "get_ipython": print, "np": object()}
    got = check_params(namespace)
    assert got == Recipe().replace(epochs=3, peak_epoch=1)
    assert got.optim.momentum == SPEC["momentum"].default


def test_a_config_or_command_line_must_name_only_parameters():
    with pytest.raises(ValueError, match="unknown parameter 'epoch'. Did you mean 'epochs'"):
        check_params({"epoch": 3}, strict=True)
    with pytest.raises(ValueError, match="unknown parameter 'max_lrr'. Did you mean 'max_lr'"):
        check_param("max_lrr", 0.1)


@pytest.mark.parametrize(
    "name,value,words",
    [
        ("dataset", "cifar100", ["dataset='cifar100'", "cifar10", "imagefolder"]),
        ("dataset", "cifr10", ["Did you mean 'cifar10'"]),
        ("model", "resnet50", ["model='resnet50'", "custom_resnet", "resnet18"]),
        ("batch_size", 0, ["batch_size=0", ">= 1"]),
        ("batch_size", -5, ["batch_size=-5"]),
        ("epochs", 0, ["epochs=0", ">= 1"]),
        ("epochs", 2.5, ["epochs=2.5", "int"]),
        ("max_lr", 0, ["max_lr=0", "> 0"]),
        ("max_lr", "fast", ["max_lr='fast'", "float"]),
        ("momentum", 1.0, ["momentum=1.0", "< 1"]),
        ("flip", "maybe", ["flip='maybe'", "bool"]),
        ("device", "tpu", ["device='tpu'", "'cpu'"]),
        ("epochs", None, ["epochs=None", "Default: 24"]),
    ],
)
def test_bad_values_name_the_value_and_the_fix(name, value, words):
    for attempt in (lambda: check_param(name, value), lambda: check_params({name: value})):
        with pytest.raises(ValueError) as e:
            attempt()
        for w in words:
            assert w in str(e.value)


def test_a_group_built_by_hand_is_checked_too():
    with pytest.raises(ValueError, match="epochs=0"):
        OptimRecipe(epochs=0)
    assert OptimRecipe(epochs="3", peak_epoch=1).epochs == 3


@pytest.mark.parametrize("peak_epoch,epochs", [(25, 24), (0, 24), (2, 1)])
def test_peak_epoch_must_lie_in_the_run(peak_epoch, epochs):
    with pytest.raises(ValueError, match=f"peak_epoch={peak_epoch}"):
        check_params({"epochs": epochs, "peak_epoch": peak_epoch})


def test_the_range_test_must_rise():
    with pytest.raises(ValueError, match="finder_end_lr=0.001 must be above finder_start_lr=0.01"):
        check_params({"finder_start_lr": 0.01, "finder_end_lr": 0.001})


def test_relative_paths_are_taken_from_the_project_root(tmp_path):
    got = check_params({"out_dir": "outputs", "data_dir": str(tmp_path), "checkpoint": None})
    assert got.outputs.out_dir == str(project_root() / "outputs")
    assert got.data.data_dir == str(tmp_path) and got.outputs.checkpoint is None


def test_a_recipe_is_frozen_and_replace_checks():
    recipe = Recipe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.optim.epochs = 3  # type: ignore[misc]
    assert recipe.replace(max_lr="0.2").optim.max_lr == 0.2 and recipe.optim.max_lr == SPEC["max_lr"].default
    with pytest.raises(ValueError, match="max_lr=-1"):
        recipe.replace(max_lr=-1)


def test_the_flat_form_round_trips_through_json():
    recipe = check_params({"max_lr": 0.4, "logit_scale": 0.125, "tta": True, "images": ["a.png", "b.png"]})
    flat = json.loads(json.dumps(recipe.to_dict()))
    assert list(flat) == list(SPEC) and check_params(flat) == recipe


def test_every_parameter_has_help_and_a_default_that_passes_its_checks():
    for name, p in SPEC.items():
        assert p.help and p.kind in (int, float, bool, str), name
        assert check_param(name, p.default) == check_param(name, check_param(name, p.default)), name
    assert set(TRAIN_PARAMS) < set(SPEC) and len(set(TRAIN_PARAMS)) == len(TRAIN_PARAMS)


def test_configs_read_as_their_recipe():
    recipe = load_recipe(ROOT / "configs" / "cifar10_custom_resnet.yaml")
    assert (recipe.optim.max_lr, recipe.network.logit_scale, recipe.network.tta) == (0.4, 0.125, True)
    assert load_recipe(ROOT / "configs" / "cifar10_custom_resnet.yaml", max_lr=0.2).optim.max_lr == 0.2
    with pytest.raises(FileNotFoundError, match="configs/"):
        read_config(ROOT / "configs" / "nope.yaml")


def test_the_defaults_are_the_cifar10_recipe_in_configs_that_was_measured_at_full_length():
    """Notebook 04 and eva-train with no arguments train configs/cifar10_custom_resnet.yaml (91.53%, README)."""
    from eva_helpers.data import augment_defaults

    measured = read_config(ROOT / "configs" / "cifar10_custom_resnet.yaml")
    defaults = {name: p.default for name, p in SPEC.items()}
    defaults.update({k: v for k, v in augment_defaults(defaults["dataset"]).items() if defaults[k] is None})
    assert {k: defaults[k] for k in measured} == measured


@pytest.mark.slow
def test_a_default_changed_in_its_one_place_changes_notebooks_command_line_docs_and_fit(tmp_path):
    """Momentum 0.9 -> 0.8 in recipe.py alone: eva-train, fit's optimiser, the notebook cells, the README follow."""
    copy = tmp_path / "project"
    for part in ("eva_helpers", "tools", "notebooks"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    for part in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / part, copy / part)
    recipe_py = copy / "eva_helpers" / "recipe.py"
    text = recipe_py.read_text()
    assert text.count('knob(0.9, "SGD momentum"') == 1, "momentum's default is written once"
    recipe_py.write_text(text.replace('knob(0.9, "SGD momentum"', 'knob(0.8, "SGD momentum"'))
    script = textwrap.dedent(f"""
        import json, torch, warnings
        warnings.simplefilter("ignore")
        from eva_helpers.data import synthetic
        from eva_helpers.train import parse_args
        from eva_helpers.run_setup import new_model
        from eva_helpers.training import fit
        recipe = parse_args(["--epochs", "1", "--peak_epoch", "1", "--max_lr", "0.1", "--batch_size", "16",
                             "--progress", "false", "--out_dir", {str(tmp_path / "out")!r}])
        data = synthetic(n_train=32, n_test=8)
        fit(new_model(recipe, data), data, recipe)
        state = torch.load({str(tmp_path / "out" / "checkpoint.pt")!r}, weights_only=False)
        metrics = json.load(open({str(tmp_path / "out" / "metrics.json")!r}))
        print(json.dumps({{"command_line": recipe.optim.momentum, "params": metrics["params"]["momentum"],
                          "optimizer": state["optimizer"]["param_groups"][0]["momentum"]}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(copy)}
    ran = subprocess.run([sys.executable, "-c", script], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == {"command_line": 0.8, "params": 0.8, "optimizer": 0.8}
    tool = [sys.executable, str(copy / "tools" / "notebook_params.py")]
    check = subprocess.run([*tool, "--check"], cwd=copy, env=env, capture_output=True, text=True)
    assert check.returncode == 1
    assert {line.split(":")[0] for line in check.stdout.splitlines()} == {"03_lr_range_test.ipynb",
                                                                         "04_train_ocp.ipynb", "README.md"}  # fmt: skip
    subprocess.run(tool, cwd=copy, env=env, check=True, capture_output=True)
    assert "momentum = 0.8" in (copy / "notebooks" / "04_train_ocp.ipynb").read_text()
    assert "| `momentum` | `0.8` |" in (copy / "README.md").read_text()
    assert subprocess.run([*tool, "--check"], cwd=copy, env=env).returncode == 0
