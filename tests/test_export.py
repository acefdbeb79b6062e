"""``train.export``: never writes over an existing file unless told to; the usage lines of the
training commands name the command as it was started."""
import sys

import pytest

from pygmatch.checkpoint import load_model, save_model
from pygmatch.nn.candidate_graph import CandidateGraphConfig, CandidateGraphNet

from .conftest import one_line_error, run_command


@pytest.fixture
def source(tmp_path):
    return save_model(CandidateGraphNet(CandidateGraphConfig(dim=32, layers=1, heads=2)), tmp_path / "run.pt")


def test_export_refuses_to_overwrite_unless_asked(tmp_path, source, capsys):
    from pygmatch.commands.train_export import main

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 a JPEG someone cares about")
    code, _, err = run_command(main, [source, "--out", photo], capsys)
    assert code == 2 and "photo.jpg: exists; choose another file name, or pass --overwrite" in one_line_error(err)
    assert photo.read_bytes().startswith(b"\xff\xd8")
    code, out, err = run_command(main, [source, "--out", tmp_path / "new" / "model.pt"], capsys)
    assert code == 0, err
    assert load_model(tmp_path / "new" / "model.pt").cfg.dim == 32
    code, _, err = run_command(main, [source, "--out", photo, "--overwrite", "--match-threshold", 0.3], capsys)
    assert code == 0, err
    assert load_model(photo).cfg.threshold == 0.3
    code, _, err = run_command(main, [tmp_path / "nothing", "--out", tmp_path / "x.pt"], capsys)
    assert code == 2 and "no such model file, checkpoint or run folder" in one_line_error(err)


@pytest.mark.parametrize("module, argv0, expected", [
    ("train_run", "/usr/bin/pygmatch-train", "pygmatch-train"),
    ("train_run", "/src/train/run.py", "python -m train.run"),
    ("train_run", "/site/pygmatch/commands/train_run.py", "python -m pygmatch.commands.train_run"),
    ("train_bank", "/usr/bin/pygmatch-bank", "pygmatch-bank"),
    ("train_bank", "/src/train/bank.py", "python -m train.bank"),
    ("train_export", "/usr/bin/pygmatch-export", "pygmatch-export"),
    ("train_export", "/src/train/export.py", "python -m train.export"),
])
def test_usage_names_the_command_as_started(monkeypatch, module, argv0, expected):
    import importlib

    monkeypatch.setattr(sys, "argv", [argv0])
    parser = importlib.import_module(f"pygmatch.commands.{module}").parser()
    assert parser.format_usage().startswith(f"usage: {expected} ")
