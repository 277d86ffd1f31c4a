"""Parameters are checked, coerced and named clearly where they enter."""

import inspect
from pathlib import Path

import pytest

from eva_helpers.params import SPEC, TRAIN_PARAMS, check_param, check_params, defaults, pick, project_root


def test_papermill_ints_and_strings_are_coerced():
    got = check_params(
        namespace={
            "max_lr": 1,
            "epochs": "24",
            "peak_epoch": 5.0,
            "flip": "false",
            "nesterov": 1,
            "weight_decay": "5e-4",
            "cutout": "None",
        }
    )
    assert got == {
        "max_lr": 1.0,
        "epochs": 24,
        "peak_epoch": 5,
        "flip": False,
        "nesterov": True,
        "weight_decay": 5e-4,
        "cutout": None,
    }
    assert isinstance(got["max_lr"], float) and isinstance(got["epochs"], int)


def test_only_known_names_are_picked_from_a_namespace():
    namespace = {"epochs": 3, "peak_epoch": 1, "In": [], "get_ipython": print, "np": object()}
    assert check_params(namespace=namespace) == {"epochs": 3, "peak_epoch": 1}


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
    with pytest.raises(ValueError) as e:
        check_param(name, value)
    for w in words:
        assert w in str(e.value)


def test_unknown_name_suggests_the_nearest():
    with pytest.raises(ValueError, match="unknown parameter 'max_lrr'. Did you mean 'max_lr'"):
        check_param("max_lrr", 0.1)


@pytest.mark.parametrize("peak_epoch,epochs", [(25, 24), (0, 24), (2, 1)])
def test_peak_epoch_must_lie_in_the_run(peak_epoch, epochs):
    with pytest.raises(ValueError, match=f"peak_epoch={peak_epoch}"):
        check_params(namespace={"epochs": epochs, "peak_epoch": peak_epoch})


def test_relative_paths_are_taken_from_the_project_root(tmp_path):
    got = check_params(namespace={"out_dir": "outputs", "data_dir": str(tmp_path), "checkpoint": None})
    assert got["out_dir"] == str(project_root() / "outputs")
    assert got["data_dir"] == str(tmp_path)
    assert got["checkpoint"] is None


def test_defaults_pass_their_own_checks():
    assert check_params(namespace=defaults()) == {
        k: (str(project_root() / v) if SPEC[k].path and v is not None else v) for k, v in defaults().items()
    }


def test_pick_takes_a_functions_keyword_arguments_from_the_parameters():
    from eva_helpers.data import load_data
    from eva_helpers.train import fit

    params = check_params(namespace=defaults(TRAIN_PARAMS), names=TRAIN_PARAMS)
    for fn in (load_data, fit):
        got = pick(fn, params)
        knobs = {n for n, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}
        assert set(got) == knobs & set(params) and all(got[k] == params[k] for k in got)
    assert "model" not in pick(fit, params)  # fit's model is the network; params["model"] is its name
    from eva_helpers.models import build_model

    knobs = set(pick(fit, params)) | set(pick(load_data, params)) | set(pick(build_model, params))
    assert knobs | {"model"} == set(TRAIN_PARAMS)


@pytest.mark.parametrize(
    "fn_path",
    ["eva_helpers.train.fit", "eva_helpers.train.prepare", "eva_helpers.train.lr_test", "eva_helpers.data.load_data"],
)
def test_function_defaults_are_the_parameter_tables(fn_path):
    import importlib

    module, name = fn_path.rsplit(".", 1)
    fn = getattr(importlib.import_module(module), name)
    for p in inspect.signature(fn).parameters.values():
        if p.name in SPEC and p.default is not inspect.Parameter.empty and not SPEC[p.name].path:
            assert p.default == SPEC[p.name].default, f"{fn_path}: {p.name}"


def test_names_must_be_given_when_listed():
    with pytest.raises(ValueError, match="were not given"):
        check_params(namespace={"epochs": 2}, names=["epochs", "seed"])
    assert Path(check_params(namespace={"data_dir": "x"})["data_dir"]).is_absolute()
