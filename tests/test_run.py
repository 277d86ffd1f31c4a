"""The strict runner: misspelt or invalid parameters stop before papermill runs anything."""

from pathlib import Path

import nbformat

from eva_helpers.run import main

ROOT = Path(__file__).resolve().parents[1]
NB = str(ROOT / "notebooks" / "04_train_ocp.ipynb")


def test_unknown_name_exits_2_naming_the_nearest(tmp_path, capsys):
    out = tmp_path / "out.ipynb"
    assert main([NB, str(out), "-p", "max_lrr", "0.1", "-p", "epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'max_lrr' for 04_train_ocp.ipynb; did you mean 'max_lr'?" in err
    assert "nothing was run" in err and not out.exists()


def test_names_in_parameter_files_are_checked_too(tmp_path, capsys):
    f = tmp_path / "p.yaml"
    f.write_text("peak_epoh: 5\n")
    assert main([NB, str(tmp_path / "o.ipynb"), "-f", str(f)]) == 2
    assert "did you mean 'peak_epoch'" in capsys.readouterr().err
    assert main([NB, str(tmp_path / "o.ipynb"), "-y", "batchsize: 4"]) == 2
    assert "did you mean 'batch_size'" in capsys.readouterr().err


def test_a_name_valid_elsewhere_but_not_in_this_notebook_is_refused(tmp_path, capsys):
    assert (
        main([str(ROOT / "notebooks" / "01_dataset_stats.ipynb"), str(tmp_path / "o.ipynb"), "-p", "epochs", "3"]) == 2
    )
    assert "unknown parameter 'epochs' for 01_dataset_stats.ipynb" in capsys.readouterr().err


def test_bad_values_are_refused_before_running(tmp_path, capsys):
    assert main([NB, str(tmp_path / "o.ipynb"), "-p", "batch_size", "0", "-p", "model", "resnet50"]) == 2
    err = capsys.readouterr().err
    assert "batch_size=0" in err and "model='resnet50'" in err


def test_good_parameters_reach_papermill(tmp_path):
    out = tmp_path / "out.ipynb"
    f = tmp_path / "p.yaml"
    f.write_text("epochs: 3\n")
    assert main([NB, str(out), "-f", str(f), "-p", "max_lr", "0.1", "-r", "data_dir", "/x", "--prepare-only"]) == 0
    nb = nbformat.read(out, 4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "epochs = 3" in injected.source and "max_lr = 0.1" in injected.source
    assert 'data_dir = "/x"' in injected.source


def test_usage_without_arguments(capsys):
    assert main([]) == 2
    assert "python -m eva_helpers.run" in capsys.readouterr().out


def test_a_recipe_file_serves_every_notebook_and_still_refuses_unknown_names(tmp_path, capsys):
    from eva_helpers.run import _for_this_notebook, given_parameters, problems

    nb01 = str(ROOT / "notebooks" / "01_dataset_stats.ipynb")
    recipe = str(ROOT / "configs" / "cifar10_custom_resnet.yaml")
    notebook, values, passed_over = given_parameters([nb01, str(tmp_path / "o.ipynb"), "-f", recipe])
    assert "epochs" not in values and "max_lr" in passed_over  # 04's names, passed over for 01
    assert values["dataset"] == "cifar10" and problems(notebook=notebook, values=values) == []
    argv = _for_this_notebook(["-f", recipe, "-p", "seed", "2"], nb01, tmp_path)
    assert argv[2:] == ["-p", "seed", "2"] and "epochs" not in Path(argv[1]).read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: cifar10\nepochz: 3\n")
    assert main([nb01, str(tmp_path / "o.ipynb"), "-f", str(bad)]) == 2
    assert "unknown parameter 'epochz' for 01_dataset_stats.ipynb" in capsys.readouterr().err
