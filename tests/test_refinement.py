"""Sub-pixel refinement: its sampling and correlation are exact, it moves real matches closer to
the truth, the learned refiner trains from a bank, saves and loads, and evaluation methods take
``+ncc`` / ``+refiner``."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from pygmatch.data import EMBEDDED_IMAGES, list_images, make_pair, pair_rng, read_gray
from pygmatch.data.bank import BankConfig, FeatureBank, build_bank
from pygmatch.data.features import detect, extract
from pygmatch.data.geometry import warp_points
from pygmatch.errors import PygmatchError
from pygmatch.matching.nearest import match_nn
from pygmatch.refinement import (LearnedRefiner, PatchRefiner, RefinerConfig, as_image_tensor, normalized_cross_correlation,
                                 parabola_peak, sample_patches)
from pygmatch.training.config import RefinerDataConfig, RefinerOptimConfig, RefinerTrainConfig, RunConfig
from pygmatch.training.refiner import bank_patches
from pygmatch.training.run import train
from pygmatch.matching.candidate_graph import CandidateGraphMatching
from pygmatch.pipeline import Pipeline

from .conftest import ROOT, one_line_error


@pytest.fixture(scope="module")
def real_pairs():
    """Three real photographs of the embedded set, each a homography pair (difficulty 1.5) with
    its mutual nearest-neighbour matches as positions."""
    out = []
    for k, file in enumerate(list_images(EMBEDDED_IMAGES)[:3]):
        im0, im1, H = make_pair(read_gray(file), pair_rng(5, k), 1.5)
        kp0, kp1 = extract(im0), extract(im1)
        m, _ = match_nn(kp0, kp1)
        out.append((im0, im1, H, kp0.xy[m[:, 0]].astype(np.float64), kp1.xy[m[:, 1]].astype(np.float64)))
    return out


def test_patches_sample_the_image_bilinearly_through_the_map():
    ys, xs = np.mgrid[0:60, 0:80]
    image = (2.0 * xs + 3.0 * ys).astype(np.float32)  # linear: bilinear sampling is exact anywhere
    centres = np.array([[30.25, 20.5], [10.0, 40.0], [79.0, 30.0]])
    maps = np.array([[[1.1, 0.2], [-0.1, 0.9]], [[1, 0], [0, 1]], [[1, 0], [0, 1]]], float)
    patches, inside = sample_patches(as_image_tensor(image), centres, maps, half=3)
    u = np.arange(-3, 4)
    for k in range(2):
        where = centres[k] + np.einsum("ij,yxj->yxi", maps[k], np.stack(np.meshgrid(u, u), -1))
        np.testing.assert_allclose(patches[k].numpy(), 2 * where[..., 0] + 3 * where[..., 1], rtol=1e-5)
    assert inside.tolist() == [True, True, False]  # the last one's patch leaves the image


def test_patches_through_real_local_maps_are_einsums_bit_for_bit(real_pairs):
    """``sample_patches`` writes ``maps @ u`` out by hand: the same sampling positions as
    ``np.einsum``, bit for bit, on the local motions of real matches."""
    from pygmatch.refinement.patches import local_linear_maps

    im0, _, _, points0, points1 = real_pairs[0]
    maps = np.linalg.inv(local_linear_maps(points0, points1))
    half = 7
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    u = np.stack(np.meshgrid(offsets, offsets, indexing="xy"), -1).reshape(-1, 2)
    where = points0[:, None, :] + np.einsum("kij,pj->kpi", maps, u)
    h, w = im0.shape
    grid = torch.from_numpy(where * (2.0 / np.array([w - 1, h - 1])) - 1.0).float().view(len(maps), 2 * half + 1, 2 * half + 1, 2)
    image = as_image_tensor(im0)
    expected = torch.nn.functional.grid_sample(image.expand(len(maps), -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                                               align_corners=True)[:, 0]
    patches, _ = sample_patches(image, points0, maps, half)
    assert len(maps) > 50 and torch.equal(patches, expected)


def test_translated_patches_are_grid_samples_at_exact_positions(image):
    """Patches without a map (the windows, the exact-match check) are cut as whole-pixel blocks and
    blended: what ``grid_sample`` gives at float64 positions, zero outside the image too."""
    rng = np.random.default_rng(3)
    h, w = image.shape
    centres = np.concatenate([rng.uniform([20, 20], [w - 20, h - 20], (200, 2)), [[2.3, 5.7], [w - 1.6, h - 3.2], [-4.5, 100.25]]])
    half = 10
    patches, inside = sample_patches(as_image_tensor(image), centres, None, half)
    u = np.arange(-half, half + 1, dtype=np.float64)
    where = centres[:, None, None, :] + np.stack(np.meshgrid(u, u, indexing="xy"), -1)[None]
    grid = torch.from_numpy(where * (2.0 / np.array([w - 1, h - 1])) - 1.0)
    expected = torch.nn.functional.grid_sample(as_image_tensor(image).double().expand(len(centres), -1, -1, -1), grid,
                                               mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0]
    np.testing.assert_allclose(patches.numpy(), expected.numpy(), atol=2e-4 * 255)
    assert inside.tolist() == [True] * 200 + [False] * 3


def test_learned_correlation_is_one_grouped_convolution(real_pairs):
    """The learned refiner correlates each feature channel on its own and sums them: the same scores
    as one convolution grouped by patch."""
    from pygmatch.refinement import match_patches, standardize

    im0, im1, _, points0, points1 = real_pairs[0]
    templates, windows, usable = match_patches(im0, im1, points0, points1, 7, 3)
    templates, windows = templates[torch.from_numpy(usable)], windows[torch.from_numpy(usable)]
    model = LearnedRefiner.load("default")
    with torch.no_grad():
        ft, fw = model.features(standardize(templates)[:, None]), model.features(standardize(windows)[:, None])
        k, c, t, size = len(ft), ft.shape[1], ft.shape[-1], fw.shape[-1]
        grouped = torch.nn.functional.conv2d(fw.reshape(1, k * c, size, size), ft, groups=k)[0] / (c * t * t)
        ncc = normalized_cross_correlation(templates, windows)
        expected = model.score(torch.stack([grouped, ncc], 1)).reshape(k, -1).softmax(1) @ model.shifts
        assert len(templates) > 50
        torch.testing.assert_close(model(templates, windows), expected, atol=1e-4, rtol=0)


def test_correlation_is_opencvs_normalised_correlation_and_the_peak_is_sub_pixel(image):
    rng = np.random.default_rng(0)
    windows = torch.from_numpy(np.stack([image[y:y + 21, x:x + 21] for y, x in rng.integers(50, 400, (5, 2))]).astype(np.float32))
    templates = windows[:, 4:19, 2:17].clone()  # the template sits at shift (x 2, y 4) of its window
    r = normalized_cross_correlation(templates, windows)
    for k in range(5):
        expected = cv2.matchTemplate(windows[k].numpy(), templates[k].numpy(), cv2.TM_CCOEFF_NORMED)
        np.testing.assert_allclose(r[k].numpy(), expected, atol=2e-3)
    offset, peak, interior = parabola_peak(r)
    np.testing.assert_allclose(offset, [[2 - 3, 4 - 3]] * 5, atol=0.05)
    assert np.all(peak > 0.999) and interior.all()
    # a quadratic bowl's vertex is found exactly
    yy, xx = np.mgrid[0:7, 0:7]
    bowl = torch.from_numpy(1 - 0.1 * ((xx - 3.3) ** 2 + (yy - 2.6) ** 2))[None].float()
    offset, _, _ = parabola_peak(bowl)
    np.testing.assert_allclose(offset[0], [0.3, -0.4], atol=1e-4)


def test_ncc_refinement_recovers_a_sub_pixel_translation(image):
    shift = np.array([0.3, -0.4])
    moved = cv2.warpAffine(image.astype(np.float32), np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), image.shape[::-1],
                           flags=cv2.INTER_CUBIC)
    kp = detect(image, "sift", 300)
    points0 = kp.xy.astype(np.float64)
    guess = points0 + shift + np.random.default_rng(0).uniform(-1.5, 1.5, points0.shape)  # 0-2 px off
    refined = PatchRefiner().refine(image, moved, points0, guess)
    before = np.linalg.norm(guess - (points0 + shift), axis=1)
    after = np.linalg.norm(refined - (points0 + shift), axis=1)
    assert np.median(before) > 0.8 and np.median(after) < 0.1
    assert np.mean(after < 0.25) > 0.8


def test_ncc_refinement_brings_real_matches_closer_to_the_truth(real_pairs):
    for iterations in (1, 2):
        within_half = {"raw": [], "refined": []}
        for im0, im1, H, p0, p1 in real_pairs:
            truth = warp_points(p0, H)
            refined = PatchRefiner(iterations=iterations).refine(im0, im1, p0, p1)
            correct = np.linalg.norm(truth - p1, axis=1) < 3  # wrong matches stay wrong; look at the right ones
            for key, q in (("raw", p1), ("refined", refined)):
                within_half[key].append(np.mean(np.linalg.norm(truth - q, axis=1)[correct] < 0.5))
        assert np.mean(within_half["refined"]) > np.mean(within_half["raw"]) + 0.04, (iterations, within_half)
    assert PatchRefiner().refine(im0, im1, p0[:0], p1[:0]).shape == (0, 2)


def test_pipelines_take_a_refinement(real_pairs):
    assert isinstance(Pipeline.load("nn+ncc").refiner, PatchRefiner) and Pipeline.load("nn").refiner is None
    with pytest.raises(PygmatchError, match="unknown refinement 'nope'"):
        Pipeline.load("nn+nope")


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    cfg = BankConfig((str(EMBEDDED_IMAGES),), max_keypoints=512, shard_pairs=4, seed=2, difficulties=(1.0, 2.0))
    return build_bank(tmp_path_factory.mktemp("rbank") / "b", cfg, pairs=8, workers=1, progress=False)


def test_bank_regenerates_its_pairs_images(bank):
    for pair in (0, 5):
        im0, im1 = bank.images(pair)
        kp0, kp1, _, _ = bank.raw(pair)
        np.testing.assert_array_equal(detect(im1, "sift", 512).xy, kp1.xy)
        np.testing.assert_array_equal(detect(im0, "sift", 512).xy, kp0.xy)


def test_bank_without_its_sources_is_one_line(bank, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = BankConfig(("relative/folder",), max_keypoints=512, shard_pairs=4)
    moved = FeatureBank(bank.root)
    moved.config = cfg
    with pytest.raises(PygmatchError, match="source folder relative/folder is not there"):
        moved.images(0)


def test_learned_refiner_trains_from_a_bank_saves_and_loads(bank, tmp_path, real_pairs):
    cfg = RefinerConfig(channels=8, hidden=16)
    patches = bank_patches(bank.root, cfg, per_pair=128, workers=1, progress=False)
    assert len(patches) > 500 and np.abs(patches.offset).max() <= cfg.search
    # the one training loop, as train.refiner runs it; all 8 pairs to train on, validation on held-out images
    run = train(RefinerTrainConfig(data=RefinerDataConfig(bank=str(bank.root), per_pair=128, val_data=str(EMBEDDED_IMAGES), val_images=2),
                                   model=cfg, optim=RefinerOptimConfig(batch_size=32, epochs=15, lr=3e-3, warmup_steps=10),
                                   run=RunConfig(out=str(tmp_path / "run"), workers=1, progress=False, val_every=1000)))
    model = LearnedRefiner.load(run)  # the run folder: its best.ckpt
    templates, windows = torch.from_numpy(patches.templates).float(), torch.from_numpy(patches.windows).float()
    ncc, _, _ = parabola_peak(normalized_cross_correlation(templates, windows))
    pred = model(templates, windows).detach().numpy()
    # mean |error| in px: the keypoints as they are, the correlation peak, the trained network
    before, classical, learned = (np.abs(patches.offset).mean(), np.abs(ncc - patches.offset).mean(),
                                  np.abs(pred - patches.offset).mean())
    assert learned < 0.75 * min(before, classical), (before, classical, learned)
    model.save(tmp_path / "r.pt")
    again = LearnedRefiner.load(tmp_path / "r.pt")
    im0, im1, _, p0, p1 = real_pairs[0]
    np.testing.assert_array_equal(again.refine(im0, im1, p0, p1), model.refine(im0, im1, p0, p1))
    (tmp_path / "bad.pt").write_bytes(b"not a file torch reads")
    for path, message in ((tmp_path / "bad.pt", "not a readable refiner file"), (tmp_path / "none.pt", "no such refiner file"),
                          (tmp_path, "no best.ckpt or last.ckpt")):
        with pytest.raises(PygmatchError, match=message) as e:
            LearnedRefiner.load(path)
        assert "\n" not in str(e.value)


def run(*args, command="train.refiner"):
    return subprocess.run([sys.executable, "-m", command, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_train_refiner_command(tmp_path, bank, embedded_dir):
    out = tmp_path / "run"
    small = ("--bank", bank.root, "--workers", "1", "--channels", "4", "--hidden", "8", "--batch-size", "64", "--no-progress")
    r = run(*small, "--out", out, "--epochs", "2", "--val-pairs", "2", "--iterations", "2")
    assert r.returncode == 0, r.stderr
    validations = [line for line in r.stdout.splitlines() if line.startswith("step ")]
    assert validations and "baseline/ncc/within_0.5" in validations[0] and "val/within_0.5" in validations[-1]
    assert {"best.ckpt", "last.ckpt", "config.yaml", "curves.png", "patches"} <= {f.name for f in out.iterdir()}
    # a run is a refinement as it is (METHOD+RUN), and train.export makes it a model file with its record inside
    assert isinstance(Pipeline.load(f"nn+{out}").refiner, LearnedRefiner) and LearnedRefiner.load(out).cfg.iterations == 2
    r = run(out, "--out", tmp_path / "r.pt", command="train.export")
    assert r.returncode == 0, r.stderr
    record = torch.load(tmp_path / "r.pt", weights_only=True)["training"]
    assert record["config"]["data"]["bank"] == str(bank.root) and "val/within_0.5" in record["curve"][-1]
    np.testing.assert_array_equal(LearnedRefiner.load(tmp_path / "r.pt").state_dict()["score.0.weight"],
                                  LearnedRefiner.load(out).state_dict()["score.0.weight"])
    before = (out / "best.ckpt").read_bytes()
    r = run(*small, "--out", out, "--epochs", "1")
    assert r.returncode == 2 and "already holds a run" in one_line_error(r.stderr)
    assert (out / "best.ckpt").read_bytes() == before  # nothing overwritten
    r = run(*small, "--out", out, "--epochs", "3", "--resume", "last", "--val-pairs", "2", "--iterations", "2")
    assert r.returncode == 0 and "patches of 6 pairs" in r.stdout, r.stderr  # read from RUN/patches, not cut again
    for args, message in ((("--val-data", tmp_path / "novaldata"), "no such folder"), (("--pairs", "999"), "fewer than the 999"),
                          (("--val-pairs", "0"), "--val-pairs 0"), (("--channels", "0"), "argument --channels")):
        r = run(*small, "--out", tmp_path / "w", *args)
        assert r.returncode == 2 and message in one_line_error(r.stderr), (args, r.stderr)
    assert not (tmp_path / "w" / "last.ckpt").exists()  # refused before any training
    r = run("--out", tmp_path / "w")
    assert r.returncode == 2 and "--bank: required" in one_line_error(r.stderr)


def test_shipped_refiner_brings_the_graph_networks_matches_closer_than_correlation():
    # the default pipeline's stages: the candidate graph network at threshold 0.2, the learned refiner
    graph, learned = CandidateGraphMatching.load("default", threshold=0.2), LearnedRefiner.load("default")
    within = {"detected": [], "ncc": [], "learned": []}  # per match: within 0.5 px of the truth
    for k, file in enumerate(list_images(EMBEDDED_IMAGES)[:6]):
        im0, im1, H = make_pair(read_gray(file), pair_rng(5, k), 1.5)
        kp0, kp1 = extract(im0), extract(im1)
        m, _ = graph.match(kp0, kp1, (640, 480))
        p0, p1 = kp0.xy[m[:, 0]].astype(np.float64), kp1.xy[m[:, 1]].astype(np.float64)
        truth = warp_points(p0, H)
        for name, q in (("detected", p1), ("ncc", PatchRefiner().refine(im0, im1, p0, p1)), ("learned", learned.refine(im0, im1, p0, p1))):
            within[name] += list(np.linalg.norm(q - truth, axis=1) < 0.5)
    share = {name: np.mean(v) for name, v in within.items()}
    # measured: 0.71, 0.86, 0.89 of the 1,064 matches
    assert share["learned"] > share["ncc"] + 0.02 and share["ncc"] > share["detected"] + 0.1, share


def test_bad_refiner_options_and_images_are_one_line(image):
    with pytest.raises(PygmatchError, match="half, search and iterations must be >= 1"):
        PatchRefiner(half=0)
    with pytest.raises(PygmatchError, match="unpadded 3x3 layers leave nothing"):
        RefinerConfig(half=1, layers=2)
    with pytest.raises(PygmatchError, match="unknown inference options"):
        LearnedRefiner.load("default", threshold=0.5)
    colour = np.dstack([image] * 3)
    with pytest.raises(PygmatchError, match=r"gray images \(H, W\), got an array of shape \(480, 640, 3\)"):
        PatchRefiner().refine(colour, image, np.array([[100.0, 100.0]] * 5), np.array([[100.0, 100.0]] * 5))
