"""Matching a whole collection (``pygmatch sfm``): the pairs (exhaustive, sequential, retrieval,
covisibility, files), the resumable store in hloc's layout, a real local Dask cluster of two worker
processes giving the same store as one process, a worker that dies, a run killed with SIGKILL and
continued, and every bad input as one line. Real matching of the embedded sacre_coeur photographs
(``sfm-mini``), at 2048 keypoints to stay fast (at 1024 COLMAP finds no first pair with enough inliers)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pygmatch import Pipeline, sfm
from pygmatch.commands.match import main
from pygmatch.data import EMBEDDED_IMAGES
from pygmatch.errors import PygmatchError

from .conftest import ROOT, one_line_error, run_command

pytest.importorskip("pycolmap", reason='pip install -e ".[sfm]"')
pytest.importorskip("h5py", reason='pip install -e ".[sfm]"')

MINI = ROOT / "pygmatch" / "datasets" / "sfm-mini"
KEYPOINTS = ["--max-keypoints", "2048"]


def pipeline():
    """What ``pygmatch sfm --max-keypoints 2048`` loads."""
    return Pipeline.load("default", max_keypoints=2048, match_threshold=0.1, threads=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``pygmatch sfm`` on the five embedded photographs, every pair, in this process."""
    out = tmp_path_factory.mktemp("collection") / "out"
    from pygmatch.commands.flags import run_cli
    with pytest.raises(SystemExit) as e:
        run_cli(main, ["sfm", str(MINI), "--out", str(out), "--pairs", "exhaustive", *KEYPOINTS, "--no-progress"])
    assert e.value.code == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_pairs():
    names = [f"{k:03d}.jpg" for k in range(6)]
    assert len(sfm.exhaustive_pairs(names)) == 15
    assert sfm.sequential_pairs(names, 2) == [("000.jpg", "001.jpg"), ("000.jpg", "002.jpg"), ("001.jpg", "002.jpg"), ("001.jpg", "003.jpg"),
                                              ("002.jpg", "003.jpg"), ("002.jpg", "004.jpg"), ("003.jpg", "004.jpg"), ("003.jpg", "005.jpg"),
                                              ("004.jpg", "005.jpg")]
    similarity = np.eye(6)
    similarity[0, 5] = similarity[5, 0] = 0.9
    similarity[1, 2] = 0.5
    pairs = sfm.top_pairs(names, similarity, 1)
    assert ("000.jpg", "005.jpg") in pairs and ("001.jpg", "002.jpg") in pairs and len(pairs) == len(set(pairs))
    with pytest.raises(PygmatchError, match="must be >= 1"):
        sfm.sequential_pairs(names, 0)


def test_pairs_file_round_trip(tmp_path):
    names = sfm.list_collection(MINI)
    pairs = sfm.sequential_pairs(names, 2)
    sfm.write_pairs(tmp_path / "pairs.txt", pairs)
    assert sfm.read_pairs(tmp_path / "pairs.txt", names) == pairs


def test_retrieval_finds_the_scene_among_distractors():
    """The five sacre_coeur photographs among the 20 embedded COCO photographs: each one's three
    most similar images by the shipped VLAD vocabulary are sacre_coeur images."""
    from pygmatch.sfm.retrieval import similarity

    files = sorted(MINI.glob("*.jpg")) + sorted(EMBEDDED_IMAGES.glob("*.jpg"))
    extractor = pipeline().extractor
    s = similarity([extractor(f).keypoints.descriptors for f in files])
    np.fill_diagonal(s, -np.inf)
    for i in range(5):
        assert set(np.argsort(-s[i])[:3]) <= set(range(5)), (i, np.argsort(-s[i])[:5])


def test_command_writes_hloc_store_and_models(run):
    out, metrics = run
    import h5py

    names = sorted(p.name for p in MINI.glob("*.jpg"))
    assert metrics["names"] == names and metrics["pairs"] == metrics["pairs_matched"] == 10 and metrics["images_extracted"] == 5
    assert metrics["verified_pairs"] >= 8 and metrics["models"] and metrics["models"][0]["registered"] >= 2
    with h5py.File(out / "features.h5") as f:
        assert sorted(f) == names
        g = f[names[0]]
        assert g["keypoints"].shape[1] == 2 and g["descriptors"].shape == (128, len(g["keypoints"])) and len(g["keypoints"]) > 500
    with h5py.File(out / "matches.h5") as f:
        g = f[f"{names[0]}/{names[1]}"]
        m0 = g["matches0"][()]
        matched = np.flatnonzero(m0 >= 0)
        assert len(matched) == len(g["matches"]) > 10  # hloc's matches0 and pygmatch's (K, 2) say the same
        np.testing.assert_array_equal(g["matches"][:, 0], matched)
        np.testing.assert_array_equal(g["matches"][:, 1], m0[matched])
    assert (out / "pairs.txt").read_text().count("\n") == 10 and not list((out / "parts").iterdir())
    assert "| `sparse/0` |" in (out / "report.md").read_text()


def test_rerun_matches_nothing_again_and_other_settings_are_refused(run, capsys):
    out, _ = run
    code, text, _ = run_command(main, ["sfm", MINI, "--out", out, "--pairs", "exhaustive", *KEYPOINTS, "--no-progress"], capsys)
    assert code == 0 and "10 pairs (exhaustive; 0 matched now)" in text
    code, _, err = run_command(main, ["sfm", MINI, "--out", out, "--pairs", "exhaustive", "--max-keypoints", "512", "--no-progress"], capsys)
    assert code == 2 and "made with another configuration" in one_line_error(err) and "--overwrite" in err


def test_views_auto_stores_each_image_s_simulated_views_and_the_synthesised_matches(image, tmp_path):
    """An extreme tilt (the image squeezed 5 times along one axis and turned) that the plain match
    cannot solve: with views="auto" the store keeps each image's plain keypoints, then those of its
    simulated views; the pair's matches index that whole set and equal, point for point, what
    Pipeline.match gives the two images; a run that finds only the features stored matches the pair
    again to the same result, from the stored views."""
    import cv2

    h, w = image.shape
    turn = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0), [0, 0, 1]])
    H = np.array([[1, 0, 0], [0, 1, h * 0.3], [0, 0, 1]]) @ np.diag([1.0, 0.2, 1.0]) @ turn
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), image)
    cv2.imwrite(str(photos / "b.png"), cv2.warpPerspective(image, H, (w, h)))
    pipe = Pipeline.load("default", views="auto")
    names, pairs = ["a.png", "b.png"], [("a.png", "b.png")]
    store = sfm.Store(tmp_path / "out", sfm.pipeline_config(pipe))
    matched = sfm.match_collection(pipe, photos, names, pairs, store, progress=False)
    res = pipe.match(photos / "a.png", photos / "b.png")
    m = matched.pairs[0].matches
    plain = len(store.keypoints("a.png"))
    assert len(res.keypoints0) > plain  # the pair went through view synthesis
    assert (m[:, 0] >= plain).any() and len(matched.keypoints[0]) == plain + len(store.features_of("a.png")[1])
    np.testing.assert_allclose(matched.keypoints[0][m[:, 0]], res.points0, atol=1e-3)  # stored as float32 positions
    np.testing.assert_array_equal(matched.pairs[0].points1, res.points1)
    first = store.contents()
    for part in (tmp_path / "out").glob("matches*.h5"):
        part.unlink()  # only the features left: the pair is matched again from the stored views
    store = sfm.Store(tmp_path / "out", sfm.pipeline_config(pipe))
    again = sfm.match_collection(pipe, photos, names, pairs, store, progress=False)
    assert again.timings["pairs_matched"] == 1
    assert sfm.same_contents(store.contents(), first)
    with pytest.raises(PygmatchError, match="another configuration"):
        sfm.Store(tmp_path / "out", sfm.pipeline_config(Pipeline.load("default")))


@pytest.fixture(scope="module")
def dask():
    """A real local Dask cluster of two worker processes."""
    with sfm.DaskExecutor(workers=2) as executor:
        yield executor


def test_dask_cluster_gives_the_same_store(run, dask, tmp_path):
    """The same features and matches as in one process, bit for bit."""
    out, _ = run
    names = sfm.list_collection(MINI)
    pipe = pipeline()
    assert dask.workers == 2
    store = sfm.Store(tmp_path / "dask", sfm.pipeline_config(pipe))
    matched = sfm.match_collection(pipe, MINI, names, sfm.exhaustive_pairs(names), store, dask, progress=False)
    assert matched.timings["pairs_matched"] == 10
    assert sfm.same_contents(store.contents(), sfm.Store(out, sfm.pipeline_config(pipe)).contents())


def test_local_workers_keep_freed_memory_in_the_heap(dask):
    """The workers --workers starts get WORKER_MALLOC, not Dask's MALLOC_TRIM_THRESHOLD_=65536."""
    from pygmatch.sfm.distributed import WORKER_MALLOC

    for name, value in WORKER_MALLOC.items():
        assert set(dask.client.run(os.environ.get, name).values()) == {str(value)}


def kill_my_worker_once(marker: str, value: int) -> int:
    """A task that kills the worker process running it the first time it runs (any task)."""
    if not os.path.exists(marker):
        Path(marker).write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)
    return value * value


def test_a_dying_worker_s_tasks_are_redone(dask, tmp_path):
    results = sorted(dask.map(kill_my_worker_once, [(str(tmp_path / "marker"), k) for k in range(6)]))
    assert (tmp_path / "marker").exists() and results == [k * k for k in range(6)]


SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from pygmatch import Pipeline, sfm
pipe = Pipeline.load("default", max_keypoints=2048, match_threshold=0.1, threads=1)
names = sfm.list_collection(sys.argv[1])
store = sfm.Store(sys.argv[2], sfm.pipeline_config(pipe))
sfm.match_collection(pipe, sys.argv[1], names, sfm.exhaustive_pairs(names), store, progress=False, pairs_per_task=1, write_every=1)
"""


def test_killed_run_continues_to_the_same_store(run, tmp_path):
    """SIGKILL once some pairs are stored (and again a moment into the continued run); the run
    continued after it ends with the store of the uninterrupted run, and matches only what was
    missing."""
    out, _ = run
    store = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for wait_for_parts in (3, 6):
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(MINI), str(store)], env=env, cwd=ROOT)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and len(list((store / "parts").glob("matches-*.h5"))) < wait_for_parts:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = len(list((store / "parts").glob("matches-*.h5")))
    pipe = pipeline()
    resumed = sfm.Store(store, sfm.pipeline_config(pipe))
    names = sfm.list_collection(MINI)
    matched = sfm.match_collection(pipe, MINI, names, sfm.exhaustive_pairs(names), resumed, progress=False)
    assert before >= 6 and matched.timings["pairs_matched"] == 10 - before
    assert sfm.same_contents(resumed.contents(), sfm.Store(out, sfm.pipeline_config(pipe)).contents())


def test_covisibility_pairs_from_the_model(run):
    out, metrics = run
    model = out / metrics["models"][0]["path"]
    pairs = sfm.covisibility_pairs(model, metrics["names"], 2)
    registered = metrics["models"][0]["registered_names"]
    assert pairs and all(a in registered and b in registered for a, b in pairs)


@pytest.mark.parametrize("args, message", [
    (["--pairs", "PAIRS"], ":1: missing.jpg is not an image of the collection"),
    (["--pairs", "covisibility"], "covisibility pairs need an existing COLMAP model"),
    (["--pairs", "covisibility", "--model", "NOWHERE"], "no such COLMAP model folder"),
    (["--method", "nn-ratio", "--camera-mode", "bogus"], "unknown camera mode"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, message):
    names = sfm.list_collection(MINI)
    (tmp_path / "pairs.txt").write_text(f"{names[0]} missing.jpg\n")
    args = [str(tmp_path / "pairs.txt") if a == "PAIRS" else str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in args]
    code, _, err = run_command(main, ["sfm", MINI, "--out", tmp_path / "out", *args, "--no-progress"], capsys)
    assert code == 2 and message in one_line_error(err)
    assert not (tmp_path / "out" / "matches.h5").exists()


def test_a_foreign_database_is_not_replaced(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "database.db").write_bytes(b"someone's database")
    code, _, err = run_command(main, ["sfm", MINI, "--out", tmp_path / "out", "--no-progress"], capsys)
    assert code == 2 and "holds database.db not made by pygmatch sfm" in one_line_error(err)
    assert (tmp_path / "out" / "database.db").read_bytes() == b"someone's database"


def test_unreachable_scheduler_is_one_line():
    with pytest.raises(PygmatchError, match="tcp://127.0.0.1:9: cannot connect to a Dask scheduler"):
        sfm.DaskExecutor(scheduler="tcp://127.0.0.1:9", timeout=1)


def test_unreadable_image_is_named(tmp_path, capsys):
    images = tmp_path / "images"
    shutil.copytree(MINI, images)
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    code, _, err = run_command(main, ["sfm", images, "--out", tmp_path / "out", "--no-progress"], capsys)
    assert code == 2 and "broken.jpg: not a readable image" in one_line_error(err)


def test_a_full_disk_keeps_what_was_stored(tmp_path, monkeypatch):
    """A write that fails (as on a full disk) is one line; the parts written before stay, and the
    failed one leaves no file behind."""
    pipe = pipeline()
    names = sfm.list_collection(MINI)[:3]
    store = sfm.Store(tmp_path / "s", sfm.pipeline_config(pipe))
    sfm.extract_collection(pipe, MINI, names, store, progress=False)
    writes = []

    def full(path):
        writes.append(path)
        if len(writes) > 1:
            raise OSError(28, "No space left on device")
    monkeypatch.setattr("pygmatch.sfm.store._fsync", full)
    with pytest.raises(PygmatchError, match="No space left on device.*kept"):
        sfm.match_collection(pipe, MINI, names, sfm.exhaustive_pairs(names), store, progress=False, pairs_per_task=1, write_every=1)
    parts = list((tmp_path / "s" / "parts").glob("matches-*.h5"))
    assert len(parts) == 1 and not list((tmp_path / "s" / "parts").glob(".tmp-*"))
    assert sfm.Store(tmp_path / "s", sfm.pipeline_config(pipe)).stored_pair(*sfm.exhaustive_pairs(names)[0]) is not None


def test_help_does_not_load_torch():
    """``pygmatch --help`` (the sfm sub-command's flags included) answers without importing torch."""
    code = "import sys; from pygmatch.commands.match import parser; parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
