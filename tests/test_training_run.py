"""``train.run`` trains the graph network for real, on the embedded images and on a feature bank:
checkpoints, the model the pipeline and eval.coco use, resume after kill -9, signals, the NaN
guard, DDP on 2 CPU processes, and bad input."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from pygmatch.errors import PygmatchError
from pygmatch.nn.candidate_graph import CandidateGraphConfig
from pygmatch.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig
from pygmatch.training.curves import validation_rows
from train.run import resolve

from .conftest import ROOT

FAST = ["--dim", "16", "--layers", "1", "--max-keypoints", "128", "--batch-size", "2", "--workers", "0", "--val-images", "3",
        "--graph", "knn", "--k", "6", "--no-progress", "--warmup-steps", "2", "--log-every", "1"]


def train_cmd(*args):
    return [sys.executable, "-m", "train.run", *FAST, *map(str, args)]


def run_train(*args, timeout=600):
    return subprocess.run(train_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_a_short_run_writes_everything(tmp_path):
    out = tmp_path / "run"
    r = run_train("--max-steps", 8, "--val-every", 4, "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("best.ckpt", "last.ckpt", "config.yaml", "curves.png", "csv/version_0/metrics.csv"):
        assert (out / name).is_file(), name
    hint = f"python -m eval.coco --methods nn-ratio,{out} --out {out / 'eval-coco'}"
    assert hint in r.stdout
    metrics = (out / "csv/version_0/metrics.csv").read_text()
    assert "val/auc@3" in metrics and "val/precision@1" in metrics and "train/loss" in metrics and "lr-Adam" in metrics
    import csv

    rows = list(csv.DictReader((out / "csv/version_0/metrics.csv").open()))
    baselines = [float(r["baseline/nn-ratio/auc@3"]) for r in rows if r.get("baseline/nn-ratio/auc@3")]
    assert len(baselines) == 1 and 0 < baselines[0] <= 100  # measured once, on the same validation pairs
    assert sum(line.startswith("step ") and "val/auc@3" in line for line in r.stdout.splitlines()) == 2  # a line per validation
    assert "weights_only" not in r.stderr + r.stdout
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["graph"] == {"name": "knn", "k": 6}
    ckpt = torch.load(out / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 8
    # the run is the graph network the pipeline loads, and the closing hint runs as printed
    from pygmatch import Pipeline
    from pygmatch.matching.candidate_graph import CandidateGraphMatching

    pipe = Pipeline.load(str(out))
    assert isinstance(pipe.matcher, CandidateGraphMatching) and pipe.matcher.cfg.dim == 16
    ev = subprocess.run([sys.executable, "-m", *hint.split()[2:], "--max-images", "2", "--draw", "0"],
                        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert str(out) in ev.stdout
    # train.export: the small model file with the run's record, read as the same network
    ex = subprocess.run([sys.executable, "-m", "train.export", out, "--out", tmp_path / "model.pt"], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)
    assert ex.returncode == 0, ex.stderr[-2000:]
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["format"] == "pygmatch-candidate-graph" and saved["training"]["config"]["model"]["dim"] == 16
    assert [row["step"] for row in saved["training"]["curve"]] and "val/auc@3" in saved["training"]["curve"][-1]
    exported = Pipeline.load(str(tmp_path / "model.pt")).matcher.model.state_dict()
    assert all(torch.equal(v, exported[k]) for k, v in pipe.matcher.model.state_dict().items())


def test_resume_after_kill_continues_the_step_count(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(train_cmd("--max-steps", 40, "--val-every", 100, "--ckpt-every-steps", 4, "--out", out),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    for line in proc.stdout:  # the run prints each checkpoint it has written (renamed into place)
        if line.startswith(f"saved {out / 'last.ckpt'} at step 8"):
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = torch.load(out / "last.ckpt", weights_only=False)["global_step"]
    assert 8 <= saved < 40, f"the run reached step {saved} before the kill"
    killed_at = torch.load(out / "last.ckpt", weights_only=False)
    r = run_train("--max-steps", 40, "--val-every", 100, "--ckpt-every-steps", 4, "--out", out, "--resume", "last")
    assert r.returncode == 0, r.stderr[-2000:]
    final = torch.load(out / "last.ckpt", weights_only=False)
    assert final["global_step"] == 40
    steps = [int(line.split(",")[header_index(out, "step")]) for line in (out / "csv/version_1/metrics.csv").read_text().splitlines()[1:]]
    assert min(steps) == killed_at["global_step"]  # the resumed run continued at the saved step, not at 0
    assert final["lr_schedulers"][0]["last_epoch"] == 40  # the schedule went on from where it was
    assert final["optimizer_states"][0]["state"]  # Adam moments restored and updated
    assert torch.equal(final["state_dict"]["model.mean"], killed_at["state_dict"]["model.mean"])  # the input normalisation stays


def header_index(out, name):
    return (out / "csv/version_1/metrics.csv").read_text().splitlines()[0].split(",").index(name)


def test_nan_guard_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from pygmatch.training import module
    from pygmatch.training.run import train

    real = module.candidate_loss
    steps = iter(range(1000))

    def poisoned(out, error, cfg):  # the fourth training step's loss is NaN
        loss = real(out, error, cfg)
        return loss * float("nan") if torch.is_grad_enabled() and next(steps) >= 3 else loss

    monkeypatch.setattr(module, "candidate_loss", poisoned)
    cfg = TrainConfig(data=DataConfig(max_keypoints=128, val_images=3),
                      model=CandidateGraphConfig(dim=16, layers=1, graph={"name": "knn", "k": 6}),
                      optim=OptimConfig(batch_size=2, warmup_steps=2, max_steps=10),
                      run=RunConfig(workers=0, progress=False, log_every=1, val_every=100, ckpt_every_steps=1, out=str(tmp_path / "run")))
    with pytest.raises(PygmatchError, match=r"the loss became nan at step 3.*last good checkpoint is .*last.ckpt"):
        train(cfg)
    ckpt = torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert TrainConfig.from_dict(yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())) == cfg


def test_ddp_two_cpu_processes_agree(tmp_path):
    out = tmp_path / "ddp"
    r = run_train("--max-steps", 3, "--val-every", 100, "--devices", 2, "--accelerator", "cpu", "--out", out, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = yaml.safe_load((out / "ranks.yaml").read_text())
    assert ranks["world_size"] == 2 and ranks["agree"] is True
    assert ranks["checksums"][0] == ranks["checksums"][1]
    assert torch.load(out / "last.ckpt", weights_only=False)["global_step"] == 3


def test_bad_input(tmp_path, embedded_dir):
    def err(*args):
        r = run_train(*args, "--out", tmp_path / "bad", "--max-steps", 2)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        return r.stderr

    assert "no checkpoint to resume from" in err("--resume", tmp_path / "none.ckpt")
    r = subprocess.run([sys.executable, "-m", "train.run", "--graph", "knn", "--k", "16", "--resume", "last"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "--resume last: name the run to continue with --out RUN" in r.stderr, r.stderr[-1000:]
    (tmp_path / "trunc.ckpt").write_bytes(b"PK\x03\x04 truncated")
    assert "trunc.ckpt: not a readable checkpoint" in err("--resume", tmp_path / "trunc.ckpt")
    small = tmp_path / "small"
    small.mkdir()
    shutil.copy(sorted(embedded_dir.iterdir())[0], small)
    assert "fewer than --batch-size 2" in err("--data", small)
    assert "invalid choice: 'star'" in err("--graph", "star")
    assert "no such folder" in err("--data", tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    for k in range(3):
        (broken / f"{k}.jpg").write_bytes(b"not a jpeg")
    assert "none of the 3 images could be read (e.g. " in err("--data", broken)
    assert "descriptor-knn" not in err("--graph", "descriptor-knn").split("choose from")[-1]


def test_init_from_another_architecture_is_refused(tmp_path):
    from pygmatch.checkpoint import save_model
    from pygmatch.nn.candidate_graph import CandidateGraphNet

    save_model(CandidateGraphNet(CandidateGraphConfig(dim=32, layers=1)), tmp_path / "other.pt")
    r = run_train("--init", tmp_path / "other.pt", "--out", tmp_path / "x", "--max-steps", 2)
    assert r.returncode == 2 and "other.pt: weights do not fit this architecture (shape mismatch" in r.stderr, r.stderr[-2000:]


def test_corrupt_images_are_passed_over_with_a_warning(tmp_path, embedded_dir):
    data = tmp_path / "imgs"
    data.mkdir()
    for f in sorted(embedded_dir.iterdir())[:4]:
        shutil.copy(f, data)
    for k in range(4):  # half the folder: the first steps' pairs hit some of them
        (data / f"00{k}_broken.jpg").write_bytes(b"garbage")
    r = run_train("--data", data, "--max-steps", 3, "--val-every", 100, "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "_broken.jpg: not a readable image" in r.stderr


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory, embedded_dir):
    """20 pairs (difficulties 1 and 2 in turn) of the embedded images, 128 SIFT keypoints each."""
    bank = tmp_path_factory.mktemp("bank") / "bank"
    argv = ["--data", embedded_dir, "--out", bank, "--pairs", 20, "--shard-pairs", 10, "--max-keypoints", 128, "--workers", 1]
    r = subprocess.run([sys.executable, "-m", "train.bank", *map(str, argv)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return bank


def test_training_from_a_bank_holds_out_its_last_pairs(tmp_path, small_bank):
    out = tmp_path / "run"
    r = run_train("--bank", f"{small_bank}:1", "--val-pairs", 6, "--max-steps", 4, "--val-every", 4, "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    graphs = re.search(r"BankGraphs\((\d+) graphs of 14 bank pairs in 1 bank\(s\)\)", r.stdout)
    assert graphs and 1 <= int(graphs.group(1)) <= 7, r.stdout  # difficulty 1 of the first 14 pairs
    rows = [line for line in (out / "csv/version_0/metrics.csv").read_text().splitlines()[1:] if line.split(",")[-1]]
    assert rows  # validated on the held-out pairs
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["bank"] == [f"{small_bank}:1"]
    # a selection that holds no pair is refused before any work
    r = run_train("--bank", f"{small_bank}:7", "--max-steps", 1, "--out", tmp_path / "none")
    assert r.returncode == 2 and "none of 7.0" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("sig, to_group", [(signal.SIGINT, False), (signal.SIGTERM, True), (signal.SIGTERM, False)],
                         ids=["sigint-pid", "sigterm-group", "sigterm-pid"])
def test_a_signal_saves_the_run_and_resume_continues_it(tmp_path, sig, to_group):
    """As a scheduler does it: mid-run (after the first periodic checkpoint), with DataLoader
    workers, to the whole process group (``timeout``, SLURM, ``kill -TERM -PGID``) or to the pid."""
    out = tmp_path / "run"
    proc = subprocess.Popen(train_cmd("--max-steps", 500, "--val-every", 1000, "--ckpt-every-steps", 2, "--ckpt-minutes", 60,
                                      "--workers", 2, "--out", out),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    for line in proc.stdout:
        if line.startswith(f"saved {out / 'last.ckpt'} at step 2"):
            break
    os.killpg(proc.pid, sig) if to_group else proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, err[-2000:]
    assert "Traceback" not in err and "continue with" in err, err[-2000:]
    saved = torch.load(out / "last.ckpt", weights_only=False)["global_step"]
    assert f"stopped at step {saved}; saved {out / 'last.ckpt'}" in err  # written at the signal, not a periodic one left behind
    assert 2 <= saved < 500
    assert not (out / "best.ckpt").exists()  # no validation between the signal and the exit
    assert "train/loss" in (out / "csv/version_0/metrics.csv").read_text()
    r = run_train("--max-steps", saved + 2, "--val-every", 1000, "--out", out, "--resume", "last")
    assert r.returncode == 0, r.stderr[-2000:]
    assert torch.load(out / "last.ckpt", weights_only=False)["global_step"] == saved + 2
    steps = [int(line.split(",")[header_index(out, "step")]) for line in (out / "csv/version_1/metrics.csv").read_text().splitlines()[1:]]
    assert min(steps) == saved


def test_a_run_stopped_before_its_first_checkpoint_can_be_started_again(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("data: {}\n")  # what a start that crashed before its first checkpoint leaves
    r = run_train("--max-steps", 1, "--out", out, "--resume", "last")
    assert r.returncode == 2 and "stopped before it saved one; start it again without --resume" in r.stderr, r.stderr[-1000:]
    r = run_train("--max-steps", 1, "--val-every", 100, "--out", out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert torch.load(out / "last.ckpt", weights_only=False)["global_step"] == 1


def test_a_run_started_with_init_resumes_from_its_saved_config(tmp_path):
    first = tmp_path / "first"
    assert run_train("--max-steps", 2, "--val-every", 100, "--out", first).returncode == 0
    out = tmp_path / "run"
    assert run_train("--max-steps", 2, "--val-every", 100, "--init", first / "last.ckpt", "--out", out).returncode == 0
    cfg = resolve(["--config", str(out / "config.yaml"), "--resume", "last"])  # what the SIGINT message tells
    assert cfg.run.init is None and cfg.run.resume == "last"
    with pytest.raises(PygmatchError, match="--resume and --init exclude each other"):
        resolve(["--config", str(out / "config.yaml"), "--resume", "last", "--init", str(first / "last.ckpt")])


def test_a_finished_run_is_never_overwritten_by_accident(tmp_path):
    out = tmp_path / "run"
    assert run_train("--max-steps", 2, "--val-every", 100, "--out", out).returncode == 0
    before = (out / "last.ckpt").read_bytes()
    r = run_train("--max-steps", 1, "--val-every", 100, "--out", out)
    assert r.returncode == 2 and "already holds a run" in r.stderr and "--resume last" in r.stderr and "Traceback" not in r.stderr
    assert (out / "last.ckpt").read_bytes() == before
    r = run_train("--max-steps", 1, "--val-every", 100, "--out", out, "--overwrite")
    assert r.returncode == 0, r.stderr[-2000:]
    assert torch.load(out / "last.ckpt", weights_only=False)["global_step"] == 1
    # the replaced run's logs went with it: the curves and the exported record are the new run's alone
    assert [p.parent.name for p in (out / "csv").glob("*/metrics.csv")] == ["version_0"]
    assert len(validation_rows(out)) == 1
    (tmp_path / "afile").write_text("x")
    r = run_train("--max-steps", 1, "--out", tmp_path / "afile")
    assert r.returncode == 2 and "is not a folder" in r.stderr


@pytest.mark.parametrize("flag, value", [("--lr", "-1"), ("--workers", "-1"), ("--positive-px", "0"), ("--threshold", "5")])
def test_bad_numbers_stop_before_anything_is_written(tmp_path, flag, value):
    r = run_train(flag, value, "--out", tmp_path / "run", "--max-steps", 1)
    assert r.returncode == 2 and "Traceback" not in r.stderr and flag in r.stderr, r.stderr[-1000:]
    assert not (tmp_path / "run").exists()


def test_unwritable_out_and_unreadable_val_data_are_refused_up_front(tmp_path, readonly_dir, capsys):
    from pygmatch.commands.train_run import main

    from .conftest import one_line_error, run_command

    code, _, err = run_command(main, [*FAST, "--max-steps", 1, "--out", readonly_dir / "run"], capsys)
    assert code == 2 and "--out" in one_line_error(err) and "cannot" in err, err
    broken = tmp_path / "broken"
    broken.mkdir()
    for k in range(3):
        (broken / f"{k}.jpg").write_bytes(b"not a jpeg")
    code, _, err = run_command(main, [*FAST, "--max-steps", 1, "--val-data", broken, "--out", tmp_path / "run"], capsys)
    assert code == 2 and "--val-data" in one_line_error(err) and "none of the 3 images could be read" in err, err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_sigterm_to_the_group_of_timeout_saves_despite_the_signals_after_it(tmp_path):
    """Issue #32, item 14: ``setsid timeout 900 python -m train.run ...`` stopped by ``kill -TERM
    -PGID`` (SLURM, a CI runner): the run gets TERM from the kill, and again from ``timeout``, which
    forwards it. The second signal raised KeyboardInterrupt, which aborted the save: no last.ckpt.
    The first signal starts the save; the later ones (here also a second ``kill -TERM -PGID``) must
    not abort it."""
    out = tmp_path / "run"
    proc = subprocess.Popen(["timeout", "900", *train_cmd("--max-steps", 500, "--val-every", 1000, "--ckpt-every-steps", 2,
                                                          "--ckpt-minutes", 60, "--workers", 2, "--out", out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    for line in proc.stdout:
        if line.startswith(f"saved {out / 'last.ckpt'} at step 2"):
            break
    os.killpg(proc.pid, signal.SIGTERM)  # timeout, the group's leader, forwards it to the run
    time.sleep(0.3)
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # a scheduler that repeats itself
    except ProcessLookupError:
        pass
    _, err = proc.communicate(timeout=300)
    # 143: timeout passes on the run's status; -15: the repeated TERM reached timeout itself after it
    # had restored the default action (between the run's exit and its own), which ends timeout, not the run
    assert proc.returncode in (143, -signal.SIGTERM), err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    saved = torch.load(out / "last.ckpt", weights_only=False)["global_step"]
    assert 1 <= saved < 500
    assert f"SIGTERM: stopped at step {saved}; saved {out / 'last.ckpt'} — continue with --config {out / 'config.yaml'} --resume last" in err


def test_validation_on_training_images_is_flagged(tmp_path, embedded_dir, small_bank):
    """Issue #32, item 15: a run validated on its own training images (the embedded images for
    both, the default; the same folder twice; a bank and its own source images) reported its
    numbers as if held out. A warning says so, once, at the start; other images stay quiet."""
    import warnings

    from pygmatch.training.run import make_datasets

    def cfg(**data):
        return TrainConfig(data=DataConfig(max_keypoints=128, val_images=2, val_pairs=6, **data),
                           model=CandidateGraphConfig(dim=16, layers=1, graph={"name": "knn", "k": 6}),
                           run=RunConfig(workers=1, progress=False))

    first, second = tmp_path / "first", tmp_path / "second"
    for folder, files in ((first, sorted(embedded_dir.iterdir())[:10]), (second, sorted(embedded_dir.iterdir())[10:])):
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder)
    (tmp_path / "link").symlink_to(first)  # the same images under another name
    flagged = ("the validation pairs come from training images ({n} of them, e.g. {example}): the validation numbers are not held-out; "
               "give --val-data a folder of other images")
    cases = [({}, 2, sorted(embedded_dir.iterdir())[0]),
             ({"data": [str(first)], "val_data": str(tmp_path / "link")}, 2, sorted(first.iterdir())[0]),
             ({"bank": [str(small_bank)], "val_data": str(embedded_dir)}, 2, sorted(embedded_dir.iterdir())[0]),
             ({"data": [str(first)], "val_data": str(second)}, 0, None),  # other images
             ({"bank": [str(small_bank)]}, 0, None)]  # the bank's held-out pairs: 20 pairs of 20 images, none seen in training
    for data, n, example in cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            make_datasets(cfg(**data))
        messages = [str(w.message) for w in caught if "validation pairs" in str(w.message)]
        assert messages == ([flagged.format(n=n, example=example.resolve())] if n else []), (data, [str(w.message) for w in caught])
