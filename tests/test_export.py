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


def test_export_never_writes_over_the_checkpoint_it_reads(tmp_path, source, capsys):
    from pygmatch.commands.train_export import main

    before = source.read_bytes()
    code, _, err = run_command(main, [source, "--out", source, "--overwrite"], capsys)
    assert code == 2 and one_line_error(err) == f"error: --out {source}: is one of the inputs ({source}); choose another file name"
    assert source.read_bytes() == before


@pytest.mark.parametrize("module, argv, message", [
    ("match", ["match", "a.png", "b.png", "--match-threshold", "5"], "argument --match-threshold: expected a probability threshold in [0, 1)"),
    ("match", ["match", "a.png", "b.png", "--max-keypoints", "0"], "argument --max-keypoints: expected a positive int, got '0'"),
    ("match", ["match", "a.png", "b.png", "--resize", "-3"], "argument --resize: expected a positive int, got '-3'"),
    ("match", ["match", "a.png"], "the following arguments are required: image1"),
    ("match", ["graph", "a.png", "--k", "0"], "argument --k: expected a positive int, got '0'"),
    ("match", ["nope"], "argument COMMAND: invalid choice: 'nope'"),
    ("train_run", ["--lr", "-1"], "argument --lr: "),
    ("train_run", ["--graph", "star"], "argument --graph: invalid choice: 'star'"),
    ("train_bank", ["--data", "d", "--out", "b", "--pairs", "0"], "argument --pairs: "),
    ("train_export", ["run", "--out", "m.pt", "--match-threshold", "2"], "argument --match-threshold: "),
    ("train_refiner", ["--bank", "b", "--out", "r.pt", "--lr", "0"], "argument --lr: "),
    ("eval_coco", ["--draw", "-1"], "argument --draw: expected an integer >= 0, got '-1'"),
    ("eval_hpatches", ["--max-side", "5"], "argument --max-side: "),
    ("eval_attention", ["--image0", "a.png", "--threads", "0"], "argument --threads: "),
    ("eval_sfm", ["--images", "d", "--match-threshold", "1"], "argument --match-threshold: "),
    ("eval_coco", ["--bogus"], "unrecognized arguments: --bogus"),
])
def test_every_bad_flag_is_one_line(module, argv, message, capsys):
    """Issue #32, item 10: argparse printed its usage lines before the error; now every command's
    bad flag is the one line ``error: ...`` and exit status 2, as every other bad input."""
    import importlib

    main = importlib.import_module(f"pygmatch.commands.{module}").main
    code, stdout, err = run_command(main, argv, capsys)
    assert code == 2 and stdout == ""
    assert err.startswith(f"error: {message}") and err.count("\n") == 1 and "usage" not in err, err
