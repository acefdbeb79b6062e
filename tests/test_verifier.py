"""The candidate verifier: its geometric messages are exact, its features separate precise from
imprecise candidates on real images, it trains from a bank, saves and loads, and the commands
refuse bad input in one line."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from pygmatch.data import EMBEDDED_IMAGES, list_images, make_pair, pair_rng, read_gray
from pygmatch.data.bank import BankConfig, build_bank
from pygmatch.data.features import Keypoints, extract
from pygmatch.data.geometry import warp_points
from pygmatch.errors import PygmatchError
from pygmatch.matching.nearest import nearest_neighbor_match
from pygmatch.pipeline import Pipeline
from pygmatch.training.verifier import CandidateSet, bank_candidates, fit_verifier, heldout_auc, pair_candidates
from pygmatch.matching.verifier import FEATURE_NAMES, MIN_CANDIDATES, CandidateVerifier, VerifierConfig, candidate_features, local_motion_residuals

from .conftest import ROOT, one_line_error


@pytest.fixture(scope="module")
def real_pairs():
    """Three real photographs of the embedded set, each with a homography pair and its keypoints."""
    out = []
    for k, file in enumerate(list_images(EMBEDDED_IMAGES)[:3]):
        im0, im1, H = make_pair(read_gray(file), pair_rng(3, k), 1.0)
        out.append((extract(im0), extract(im1), H))
    return out


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    cfg = BankConfig((str(EMBEDDED_IMAGES),), max_keypoints=512, shard_pairs=4, seed=1, difficulties=(1.0, 2.0))
    return build_bank(tmp_path_factory.mktemp("vbank") / "b", cfg, pairs=8, workers=1, progress=False)


def test_local_motion_residual_is_the_distance_from_the_neighbours_affine_motion():
    rng = np.random.default_rng(0)
    p0 = rng.uniform(0, 640, (200, 2))
    A = np.array([[1.05, 0.1], [-0.08, 0.97]])
    p1 = p0 @ A.T + [12.0, -7.0]
    p1[17] += [2.0, 0.0]  # one candidate 2 px off the motion
    residual, spread = local_motion_residuals(p0, p1, np.arange(200), k=12)
    assert residual[17] == pytest.approx(2.0, abs=0.05)
    others = np.delete(residual, 17)
    # an exact affine motion is fitted exactly; where the 2 px candidate is a neighbour, its Cauchy
    # weight (1 / (1 + 2²)) leaves a bounded pull on the fit
    assert np.median(others) < 1e-3 and others.max() < 0.25
    assert np.median(spread) < 0.05


def test_candidates_are_nn_and_features_separate_precise_from_imprecise(real_pairs):
    precise, wrong = [], []
    for kp0, kp1, H in real_pairs:
        cand, feats = candidate_features(kp0, kp1)
        nn, _ = nearest_neighbor_match(kp0.descriptors, kp1.descriptors)
        np.testing.assert_array_equal(cand, nn)
        assert feats.shape == (len(cand), len(FEATURE_NAMES)) and np.isfinite(feats).all()
        err = np.linalg.norm(warp_points(kp0.xy[cand[:, 0]], H) - kp1.xy[cand[:, 1]], axis=1)
        residual = feats[:, FEATURE_NAMES.index("log1p_residual_k12")]
        precise.append(residual[err < 1]), wrong.append(residual[err > 3])
    precise, wrong = np.concatenate(precise), np.concatenate(wrong)
    # in pixels: the median precise candidate sits well under 1 px from its neighbours' motion,
    # the median wrong one tens of pixels away
    assert np.expm1(np.median(precise)) < 1.0 < 10.0 < np.expm1(np.median(wrong))


def test_too_few_candidates_are_all_kept():
    rng = np.random.default_rng(1)
    desc = rng.normal(size=(MIN_CANDIDATES - 1, 128)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    z = np.zeros(len(desc), np.float32)
    kp = Keypoints(rng.uniform(0, 100, (len(desc), 2)).astype(np.float32), z + 3, z, z + 1, desc)
    matches, scores = CandidateVerifier().match(kp, kp)
    assert len(matches) == len(desc) and (scores == 1).all()


def test_trains_from_a_bank_and_ranks_precise_candidates_first(bank):
    train = bank_candidates(bank.root, workers=1, progress=False)
    assert set(np.unique(train.pair)) <= set(range(8)) and len(train.features) == len(train.error)
    model = fit_verifier(train, VerifierConfig(), epochs=6, progress=False)
    with torch.no_grad():
        prob = torch.sigmoid(model(torch.from_numpy(train.features))).numpy()
    label = train.error < 1
    # ranking quality (ROC AUC) on what it learned from: far above chance
    order = np.argsort(prob)
    ranks = np.empty(len(prob))
    ranks[order] = np.arange(len(prob))
    roc = (ranks[label].mean() - (label.sum() - 1) / 2) / (~label).sum()
    assert roc > 0.9


def test_threshold_and_min_keep(real_pairs):
    kp0, kp1, _ = real_pairs[0]
    model = CandidateVerifier(VerifierConfig(threshold=0.999, min_keep=5, pad_from=0))
    with torch.no_grad():
        model.mlp[-1].bias.fill_(-20.0)  # every probability ~0: only the min_keep most probable stay
    matches, scores = model.match(kp0, kp1)
    assert len(matches) == 5
    model.cfg.pad_from = 1  # padding only where some candidate passes the threshold: none does here
    assert len(model.match(kp0, kp1)[0]) == 0
    model.cfg.pad_from = 0
    model.cfg.threshold, model.cfg.min_keep = 0.0, 0
    assert len(model.match(kp0, kp1)[0]) == len(candidate_features(kp0, kp1)[0])


def test_save_load_round_trip_and_bad_files(tmp_path, real_pairs):
    train = CandidateSet(*(np.concatenate(a) for a in zip(*[
        (f, e, np.full(len(e), k)) for k, (kp0, kp1, H) in enumerate(real_pairs) for f, e in [pair_candidates(kp0, kp1, H)]])))
    model = fit_verifier(train, epochs=1, progress=False)
    path = tmp_path / "v.pt"
    model.save(path)
    again = CandidateVerifier.load(path, threshold=0.5)
    assert again.cfg.threshold == 0.5
    kp0, kp1, _ = real_pairs[1]
    model.cfg.threshold = 0.5
    for a, b in zip(model.match(kp0, kp1), again.match(kp0, kp1)):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    for bad, says in ((tmp_path / "missing.pt", "no such verifier file"), (tmp_path / "junk.pt", "not a readable verifier file"),
                      (tmp_path / "other.pt", "not a pygmatch verifier")):
        with pytest.raises(PygmatchError, match=says):
            CandidateVerifier.load(bad)
    with pytest.raises(PygmatchError, match="unknown inference options"):
        CandidateVerifier.load(path, early_exit=True)
    with pytest.raises(PygmatchError, match="threshold must be in"):
        CandidateVerifier.load(path, threshold=1.5)


def test_shipped_verifier_is_more_precise_than_nn_and_keeps_homographies(real_pairs):
    verifier = CandidateVerifier.load("default")
    items = [(kp0, kp1, H, 1.0) for kp0, kp1, H in real_pairs]
    p_verified, p_nn = [], []
    for kp0, kp1, H, _ in items:
        for out, fn in ((p_verified, verifier.match), (p_nn, lambda a, b: nearest_neighbor_match(a.descriptors, b.descriptors))):
            m, _ = fn(kp0, kp1)
            out.append(np.mean(np.linalg.norm(warp_points(kp0.xy[m[:, 0]], H) - kp1.xy[m[:, 1]], axis=1) < 1))
    assert np.mean(p_verified) > np.mean(p_nn) + 0.05  # precision at 1 px
    assert heldout_auc(verifier.match, items)[1.0]["auc@3"] > 50


def test_eval_resolves_the_verifier_by_name_and_by_file(tmp_path, real_pairs):
    kp0, kp1, H = real_pairs[0]
    by_name = Pipeline.load("verifier").matcher.match(kp0, kp1, (640, 480), (640, 480))
    CandidateVerifier.load("default").save(tmp_path / "copy.pt")
    by_file = Pipeline.load(str(tmp_path / "copy.pt")).matcher.match(kp0, kp1, (640, 480), (640, 480))
    np.testing.assert_array_equal(by_name[0], by_file[0])
    with pytest.raises(PygmatchError, match="sift"):
        Pipeline.load("verifier", features="orb")


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "train.verifier", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_train_verifier_command(tmp_path, bank):
    out = tmp_path / "v.pt"
    r = run("--bank", bank.root, "--out", out, "--epochs", "1", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert out.is_file() and out.with_suffix(".json").is_file()
    before = out.read_bytes()
    r = run("--bank", bank.root, "--out", out, "--epochs", "1", "--workers", "1")
    assert r.returncode == 2 and "already exists" in one_line_error(r.stderr)
    assert out.read_bytes() == before  # nothing overwritten
    r = run("--bank", bank.root, "--out", tmp_path / "w.pt", "--pairs", "999", "--workers", "1")
    assert r.returncode == 2 and "fewer than the 999" in one_line_error(r.stderr)
    r = run("--bank", bank.root, "--out", tmp_path / "w.pt", "--val-data", tmp_path / "novaldata")
    assert r.returncode == 2 and "no such folder" in one_line_error(r.stderr)
    assert not (tmp_path / "w.pt").exists()  # refused before any work
    r = run("--bank", bank.root, "--out", tmp_path)
    assert r.returncode == 2 and "folder" in one_line_error(r.stderr)
    r = run("--bank", tmp_path / "nobank", "--out", tmp_path / "w.pt")
    assert r.returncode == 2 and "no such bank folder" in one_line_error(r.stderr)
    r = run("--bank", bank.root, "--out", tmp_path / "w.pt", "--min-keep", "-1")
    assert r.returncode == 2 and "--min-keep" in one_line_error(r.stderr)


def test_the_verifier_pipeline_returns_positions_in_original_pixels():
    image = read_gray(list_images(EMBEDDED_IMAGES)[0])
    big = np.kron(image, np.ones((3, 3), np.uint8))  # 1920x1440: extracted at 1024 px, returned in 1920x1440 pixels
    H = np.diag([3.0, 3.0, 1.0])  # a pixel (x, y) of image is (3x + 1, 3y + 1) in big, up to the centres' half pixel
    out = Pipeline.load("verifier+refiner").match(image, big)
    m = out.matches
    assert len(m) > 50 and out.keypoints1[:, 0].max() > 1024
    err = np.linalg.norm(warp_points(out.keypoints0[m[:, 0]] + 0.5, H) - 0.5 - out.keypoints1[m[:, 1]], axis=1)
    assert np.median(err) < 1.5
    # the matched positions: image 0's keypoints, image 1's refined (by default the shipped refiner)
    np.testing.assert_allclose(out.points0, out.keypoints0[m[:, 0]], atol=1e-4)
    refined = np.linalg.norm(warp_points(out.points0 + 0.5, H) - 0.5 - out.points1, axis=1)
    assert np.median(refined) < 0.8 * np.median(err), (np.median(refined), np.median(err))
    plain = Pipeline.load("verifier").match(image, big)
    np.testing.assert_allclose(plain.points1, plain.keypoints1[plain.matches[:, 1]], atol=1e-4)
