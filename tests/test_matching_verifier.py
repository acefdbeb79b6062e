"""The candidate verifier (``pygmatch.matching.verifier``) says "these do not overlap": photographs
paired with different ones get (almost) no matches from the verifier's pipeline (and from the
default pipeline, whose candidate graph network pads the same way), a true pair many."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import pygmatch
from pygmatch.data import EMBEDDED_IMAGES, list_images, make_pair, pair_rng, read_gray
from pygmatch.errors import PygmatchError
from pygmatch.matching.verifier import WEIGHTS, CandidateVerifier, VerifierConfig


def ransac_inliers(points0: np.ndarray, points1: np.ndarray) -> int:
    if len(points0) < 4:
        return 0
    _, mask = cv2.findHomography(points0, points1, cv2.RANSAC, 3.0)
    return 0 if mask is None else int(mask.sum())


@pytest.fixture(scope="module")
def pipe():
    return pygmatch.Pipeline.load("verifier+refiner")


@pytest.fixture(scope="module")
def photos(pipe):
    """Features of 9 embedded photographs (all different scenes)."""
    return [pipe.extract(f) for f in list_images(EMBEDDED_IMAGES)[:9]]


@pytest.mark.parametrize("name", ["verifier+refiner", "default"])
def test_unrelated_photographs_get_few_matches(name, photos):
    pipe = pygmatch.Pipeline.load(name)  # the verifier's pipeline, and the default's candidate graph network (threshold 0.2)
    results = [pipe.match(a, b) for a, b in zip(photos, photos[1:])]
    counts = [len(r) for r in results]
    # before: 60 each (every pair padded to min_keep), RANSAC found >= 8 inliers in some
    assert np.median(counts) <= 5 and max(counts) < 10, counts
    assert all(ransac_inliers(r.points0, r.points1) < 8 for r in results)


def test_a_true_pair_gets_many_matches_and_its_homography(pipe):
    im0, im1, H = make_pair(read_gray(list_images(EMBEDDED_IMAGES)[0]), pair_rng(0, 0), 1.0)
    r = pipe.match(im0, im1)
    assert len(r) >= 100
    corners = np.array([[0, 0, 1], [639, 0, 1], [639, 479, 1], [0, 479, 1]], float).T
    est, true = r.homography() @ corners, H @ corners
    assert np.abs(est[:2] / est[2] - true[:2] / true[2]).max() < 3


def test_padding_to_min_keep_needs_evidence_of_overlap(photos):
    """``pad_from=0`` is the old behaviour: every pair padded to ``min_keep`` candidates."""
    a, b = photos[0].keypoints, photos[1].keypoints
    padded = CandidateVerifier.load("default", pad_from=0)
    m, s = padded.match(a, b)
    assert len(m) == padded.cfg.min_keep == 60 and s.min() < padded.cfg.threshold
    m, s = CandidateVerifier.load("default").match(a, b)
    assert len(m) < 10 and (s > 0.5).all()


def test_pad_from_is_an_inference_option_and_checked(tmp_path):
    assert CandidateVerifier.load().cfg.pad_from == 10
    assert CandidateVerifier.load(pad_from=3).cfg.pad_from == 3
    with pytest.raises(PygmatchError, match="pad_from must be >= 0"):
        VerifierConfig(pad_from=-1)
    # a file written before pad_from existed loads with the default
    ckpt = torch.load(WEIGHTS, map_location="cpu", weights_only=False)
    ckpt["config"].pop("pad_from", None)
    torch.save(ckpt, tmp_path / "old.pt")
    assert CandidateVerifier.load(tmp_path / "old.pt").cfg.pad_from == 10


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    from pygmatch.data.bank import BankConfig, build_bank

    cfg = BankConfig((str(EMBEDDED_IMAGES),), max_keypoints=512, shard_pairs=3, seed=1, difficulties=(1.0, 2.0))
    return build_bank(tmp_path_factory.mktemp("vbank") / "b", cfg, pairs=6, workers=1, progress=False)


def test_candidate_features_are_kept_as_computed_and_an_interrupted_run_continues(bank, tmp_path, monkeypatch):
    import pygmatch.training.verifier as tv
    from pygmatch.training.pair_cache import cached_pairs

    plain = tv.bank_candidates(bank.root, workers=1, progress=False)
    computed, original = [], tv._bank_pair_candidates

    def stops_at_pair_4(b, pair):
        if pair == 4:
            raise KeyboardInterrupt
        computed.append(pair)
        return original(b, pair)
    monkeypatch.setattr(tv, "_bank_pair_candidates", stops_at_pair_4)
    with pytest.raises(KeyboardInterrupt):
        tv.bank_candidates(bank.root, workers=1, progress=False, cache=tmp_path / "c")
    assert cached_pairs(tmp_path / "c") == 4 and computed == [0, 1, 2, 3]

    def counts(b, pair):
        computed.append(pair)
        return original(b, pair)
    computed.clear()
    monkeypatch.setattr(tv, "_bank_pair_candidates", counts)
    resumed = tv.bank_candidates(bank.root, workers=1, progress=False, cache=tmp_path / "c")
    assert computed == [4, 5]  # the first four were read back
    for a, b in ((plain.features, resumed.features), (plain.error, resumed.error), (plain.pair, resumed.pair)):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_in_train_verifier_says_what_is_kept_and_the_rerun_continues(bank, tmp_path, monkeypatch, capsys):
    import pygmatch.training.verifier as tv
    from pygmatch.commands.train_verifier import main

    from .conftest import run_command

    out = tmp_path / "v.pt"
    fit = tv.fit_verifier

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(tv, "fit_verifier", interrupted)
    code, _, err = run_command(main, ["--bank", bank.root, "--out", out, "--workers", "1", "--epochs", "1"], capsys)
    assert code == 130 and "Traceback" not in err
    assert f"the candidate features of all 6 bank pairs are kept in {tmp_path / 'v.cache'}" in err.strip().splitlines()[-1]
    assert not out.exists()
    monkeypatch.setattr(tv, "fit_verifier", fit)
    code, stdout, _ = run_command(main, ["--bank", bank.root, "--out", out, "--workers", "1", "--epochs", "1"], capsys)
    assert code == 0 and "continuing from the candidate features of 6 bank pairs" in stdout
    assert out.is_file() and not (tmp_path / "v.cache").exists()  # the cache goes once the model is written
    assert CandidateVerifier.load(out).cfg.pad_from == 10
