"""A non-editable install works away from the checkout: only ``pygmatch`` is installed (no
top-level ``train`` / ``eval``), the embedded images and weights ship as package data, the
commands run as ``python -m pygmatch.commands.*`` and are declared as console scripts.

Offline and fast: ``pip install --no-deps --no-build-isolation --no-index`` builds with the
setuptools of this venv, into a ``--target`` folder; a copy of the source is built, so no
``build/`` folder is left in the checkout. The installed code then runs with ``python -S`` and
``PYTHONPATH=<target>:<this venv's site-packages>``: ``-S`` skips the ``.pth`` files, among them
the editable install's finder, which would otherwise import ``train`` from the checkout."""
import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import ROOT

SCRIPTS = {
    "pygmatch": "pygmatch.commands.match:cli",
    "pygmatch-train": "pygmatch.commands.train_run:cli",
    "pygmatch-bank": "pygmatch.commands.train_bank:cli",
    "pygmatch-export": "pygmatch.commands.train_export:cli",
    "pygmatch-eval": "pygmatch.commands.eval_coco:cli",
    "pygmatch-hpatches": "pygmatch.commands.eval_hpatches:cli",
    "pygmatch-pose": "pygmatch.commands.eval_pose:cli",
    "pygmatch-attention": "pygmatch.commands.eval_attention:cli",
    "pygmatch-refiner": "pygmatch.commands.train_refiner:cli",
    "pygmatch-sfm": "pygmatch.commands.eval_sfm:cli",
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(target folder, a folder outside the checkout, environment that sees only the install + the dependencies)."""
    pytest.importorskip("setuptools")
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("pygmatch", "train", "eval"):  # train/ and eval/ too: the configuration must leave them out
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    (src / "datasets").mkdir()
    shutil.copy2(ROOT / "datasets" / "README.md", src / "datasets" / "README.md")
    site = tmp / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        "--target", str(site), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    work = tmp / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return site, work, env


def python(installed, *args, timeout=300):
    site, work, env = installed
    return subprocess.run([sys.executable, "-S", *map(str, args)], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


def test_only_pygmatch_is_installed_with_its_data(installed):
    site, _, _ = installed
    assert not (site / "train").exists() and not (site / "eval").exists()
    record = next(site.glob("pygmatch-*.dist-info")).joinpath("RECORD").read_text().splitlines()
    assert not [line for line in record if line.startswith(("train/", "eval/"))]
    for sub, pattern in (("coco-mini", "*"), ("real-mini", "*/*"), ("sfm-mini", "*")):
        shipped = sorted(p.relative_to(ROOT / "pygmatch") for p in (ROOT / "pygmatch" / "datasets" / sub).glob(pattern) if p.is_file())
        assert shipped and sorted(p.relative_to(site / "pygmatch") for p in (site / "pygmatch" / "datasets" / sub).glob(pattern)) == shipped
    weights = site / "pygmatch" / "weights"
    assert (weights / "candidate_graph.pt").is_file() and (weights / "refiner.pt").is_file()
    assert not (weights / "graph.pt").exists() and not (weights / "verifier.pt").exists()  # the removed matchers' weights


def test_imports_from_the_install_not_the_checkout(installed):
    site, _, _ = installed
    r = python(installed, "-c", "import pygmatch; print(pygmatch.__file__)")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).is_relative_to(site)
    for name in ("train", "eval"):
        r = python(installed, "-c", f"import {name}")
        assert r.returncode != 0 and f"No module named '{name}'" in r.stderr, (r.stdout, r.stderr)
    r = python(installed, "-c", "from pygmatch.data import EMBEDDED_IMAGES, EMBEDDED_SEQUENCES, list_images\n"
                                "assert EMBEDDED_IMAGES.is_dir() and 'site' in str(EMBEDDED_IMAGES), EMBEDDED_IMAGES\n"
                                "assert (EMBEDDED_SEQUENCES / 'leuven' / 'H1to2p').is_file(), EMBEDDED_SEQUENCES\n"
                                "print(EMBEDDED_IMAGES, len(list_images(EMBEDDED_IMAGES)))")
    assert r.returncode == 0, r.stderr
    path, count = r.stdout.split()
    assert Path(path) == site / "pygmatch" / "datasets" / "coco-mini" and int(count) == 20


def test_a_command_runs_on_the_packaged_images(installed):
    _, work, _ = installed
    r = python(installed, "-m", "pygmatch.commands.eval_coco", "--methods", "nn,nn-ratio", "--max-images", "2", "--draw", "0", "--out", work / "ev")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 pairs, 0 skipped" in r.stdout and str(Path("pygmatch") / "datasets" / "coco-mini") in r.stdout
    assert (work / "ev" / "report.md").is_file() and (work / "ev" / "metrics.json").is_file()
    (work / "a_file").write_text("x")  # the console-script entry (cli): a bad --out is one line and status 2
    r = python(installed, "-c", "import sys; sys.argv = ['pygmatch-eval', '--out', 'a_file']\n"
                                "from pygmatch.commands.eval_coco import cli; cli()")
    assert r.returncode == 2 and r.stderr.strip() == "error: --out a_file: exists and is not a folder", r.stderr


def test_the_pipeline_works_from_the_install(installed):
    """README's first use, on the packaged images, away from the checkout: every shipped pipeline
    loads its weights from the install, and the ``pygmatch`` command draws the matches."""
    site, work, _ = installed
    code = """
import numpy as np, pygmatch
from pygmatch.data import EMBEDDED_SEQUENCES
a, b = EMBEDDED_SEQUENCES / "leuven" / "img1.png", EMBEDDED_SEQUENCES / "leuven" / "img2.png"
pipe = pygmatch.Pipeline.load("default")
res = pipe.match(str(a), str(b))
assert pygmatch.__file__.startswith(%r), pygmatch.__file__
assert len(res.matches) > 100 and res.points1.shape == (len(res.matches), 2) and res.homography() is not None
for name in ("candidate-graph+refiner", "nn-ratio+ncc", "candidate-graph"):
    assert len(pygmatch.Pipeline.load(name).match(pipe.extract(str(a)), str(b)).matches) > 50, name
unrefined = pygmatch.Pipeline.load("default", refine=None).match(str(a), str(b))
assert np.array_equal(unrefined.matches, res.matches)
print("ok", len(res.matches))
""" % str(site)
    r = python(installed, "-c", code)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr
    image = site / "pygmatch" / "datasets" / "real-mini" / "leuven" / "img1.png"
    r = python(installed, "-c", "import sys; sys.argv = ['pygmatch', 'match', sys.argv[1], sys.argv[1], '--out', 'm.png']\n"
                                "from pygmatch.commands.match import cli; cli()", image)
    assert r.returncode == 0 and (work / "m.png").is_file(), r.stdout + r.stderr


def test_console_scripts_are_declared(installed):
    site, _, _ = installed
    entry_points = configparser.ConfigParser()
    entry_points.optionxform = str
    entry_points.read(next(site.glob("pygmatch-*.dist-info")).joinpath("entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == SCRIPTS
    for name in SCRIPTS:
        assert (site / "bin" / name).is_file()
    r = python(installed, "-c", "import importlib, sys\n"
                                "for target in sys.argv[1:]:\n"
                                "    module, name = target.split(':')\n"
                                "    assert callable(getattr(importlib.import_module(module), name)), target", *SCRIPTS.values())
    assert r.returncode == 0, r.stderr
