import math

import numpy as np
import pytest

from pygmatch.matching.nearest import nearest_neighbor_match
from pygmatch.matching.oracle import oracle_match, parse_oracle
from pygmatch.data import make_pairs
from pygmatch.errors import PygmatchError
from pygmatch.evaluation.evaluate import evaluate, load_pipelines
from pygmatch.evaluation.metrics import auc_difference, error_auc, estimate_homography, pair_metrics, summarize, weighted_dlt
from pygmatch.data.geometry import warp_points


def test_auc_hand_computed():
    # errors 0.5, 2, inf: the curve rises linearly to 1/3 at 0.5 px, to 2/3 at 2 px, then stays.
    # @1: 0.5·0.5·(1/3) + 0.5·(1/3) = 0.25;  @3: (0.0833 + 1.5·0.5 + 1·2/3) / 3 = 0.5
    assert error_auc([2.0, math.inf, 0.5], (1, 3)) == pytest.approx([0.25, 0.5])
    assert error_auc([0.0, 0.0], (1,)) == pytest.approx([1.0])
    assert error_auc([math.inf], (10,)) == [0.0]


def test_auc_difference_is_paired_and_its_interval_says_when_sets_differ():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 2, 100)
    assert auc_difference(a, a) == (0.0, 0.0, 0.0)  # same pairs resampled together: no spread
    worse = a + rng.uniform(0, 2, 100)  # every pair worse, by up to 2 px
    d, lo, hi = auc_difference(a, worse)
    assert d == pytest.approx(100 * (error_auc(a, (3,))[0] - error_auc(worse, (3,))[0]))
    assert 0 < lo < d < hi
    noisy = a.copy()
    noisy[:3] = math.inf  # 3 failures in 100 pairs: how many a resample holds varies a lot
    d, lo, hi = auc_difference(noisy, a)
    assert lo < d < hi < 0 and hi - lo > 2
    with pytest.raises(ValueError, match="same pairs"):
        auc_difference(a, a[:10])


def test_dlt_recovers_an_exact_homography():
    H = np.array([[1.1, 0.05, 20], [-0.03, 0.95, 10], [1e-4, -2e-4, 1]])
    pts = np.random.default_rng(0).uniform(0, 600, (20, 2))
    np.testing.assert_allclose(weighted_dlt(pts, warp_points(pts, H)), H, atol=1e-6)
    assert weighted_dlt(pts[:3], pts[:3]) is None


def test_weights_silence_outliers():
    H = np.array([[1, 0, 5.0], [0, 1, 7.0], [0, 0, 1]])
    pts = np.random.default_rng(1).uniform(0, 600, (30, 2))
    tgt = warp_points(pts, H)
    tgt[:5] += 80  # outliers
    w = np.r_[np.zeros(5), np.ones(25)]
    np.testing.assert_allclose(weighted_dlt(pts, tgt, w), H, atol=1e-6)
    np.testing.assert_allclose(estimate_homography(pts, tgt, "ransac"), H, atol=1e-4)


def test_pair_metrics_on_a_known_case():
    H = np.array([[1, 0, 10.0], [0, 1, 0], [0, 0, 1]])
    xy0 = np.random.default_rng(2).uniform(50, 500, (10, 2))
    xy1 = warp_points(xy0, H)
    gt0 = np.arange(10)
    matches = np.array([[0, 0], [1, 1], [2, 2], [3, 3], [4, 4], [5, 6]])  # 5 right, 1 wrong
    m = pair_metrics(matches, np.ones(6), xy0, xy1, gt0, H, (640, 480))
    assert m["matches"] == 6
    assert m["precision"] == m["precision@1"] == pytest.approx(5 / 6)
    assert m["recall"] == pytest.approx(5 / 10)
    assert m["ransac_error"] < 1e-3
    none = pair_metrics(np.zeros((0, 2)), np.zeros(0), xy0, xy1, gt0, H, (640, 480))
    assert math.isnan(none["precision"]) and math.isnan(none["precision@1"]) and none["recall"] == 0 and none["ransac_error"] == math.inf
    s = summarize([m, none])
    assert s["precision"] == pytest.approx(100 * 5 / 6) and s["recall"] == pytest.approx(25)
    assert s["precision@1"] == pytest.approx(100 * 5 / 6)
    off = xy1.copy()
    off[4] += [1.5, 0]  # within 3 px, not within 1 px
    m = pair_metrics(matches, np.ones(6), xy0, off, gt0, H, (640, 480))
    assert m["precision"] == pytest.approx(5 / 6) and m["precision@1"] == pytest.approx(4 / 6)
    assert s["auc@1"] == pytest.approx(50, abs=0.1) and s["pairs"] == 2


def test_nearest_neighbour_and_ratio():
    rng = np.random.default_rng(0)
    d0 = rng.normal(size=(50, 32)).astype(np.float32)
    d0 /= np.linalg.norm(d0, axis=1, keepdims=True)
    perm = rng.permutation(50)
    d1 = d0[perm] + 0.01 * rng.normal(size=(50, 32)).astype(np.float32)
    d1 /= np.linalg.norm(d1, axis=1, keepdims=True)
    matches, scores = nearest_neighbor_match(d0, d1)
    assert len(matches) == 50 and (perm[matches[:, 1]] == matches[:, 0]).all()
    assert (scores > 0.99).all()
    # a near-duplicate in image 1 makes descriptor 0 ambiguous: the ratio test drops it, NN keeps it
    d1b = np.vstack([d1, d1[np.argsort(perm)[0]] * 0.999 + 0.001])
    d1b /= np.linalg.norm(d1b, axis=1, keepdims=True)
    m_ratio, _ = nearest_neighbor_match(d0, d1b, ratio=0.8)
    assert 0 not in m_ratio[:, 0] and len(m_ratio) == 49
    empty, _ = nearest_neighbor_match(d0[:0], d1)
    assert empty.shape == (0, 2)


def test_oracle_matches_are_the_ground_truth_at_their_threshold():
    H = np.array([[1, 0, 10.0], [0, 1, 0], [0, 0, 1]])
    xy0 = np.array([[100.0, 100], [200, 200], [300, 300], [400, 100]])
    xy1 = warp_points(xy0, H) + [[0.5, 0], [2.0, 0], [4.0, 0], [0, 0]]  # 0.5, 2, 4, 0 px off
    matches, scores = oracle_match(xy0, xy1, H, 3.0)
    assert matches.tolist() == [[0, 0], [1, 1], [3, 3]] and (scores == 1).all()
    assert oracle_match(xy0, xy1, H, 1.0)[0].tolist() == [[0, 0], [3, 3]]
    assert oracle_match(xy0, xy1, H, 10.0)[0].tolist() == [[0, 0], [1, 1], [2, 2], [3, 3]]  # dustbin moves with it
    assert parse_oracle("oracle@2.5").px == 2.5 and parse_oracle("nn-oracle@1").candidates == "nn"
    for bad in ("oracle@", "oracle@x", "oracle@0", "oracle@-1", "oracle@inf"):
        with pytest.raises(PygmatchError, match="expected oracle@PX"):
            load_pipelines([bad])


def test_oracle_rows_and_precision_at_1px_on_a_real_pair(embedded_dir):
    """Real image, real SIFT: the oracles are the ceilings they claim to be."""
    pairs = make_pairs(embedded_dir, max_images=1)
    r = evaluate(pairs, load_pipelines(["nn", "nn-ratio", "oracle@1", "oracle@3", "nn-oracle@1"]), progress=False).summary
    assert r["oracle@3"]["precision"] == 100 and r["oracle@3"]["recall"] == 100  # exactly the ground truth
    assert r["oracle@1"]["precision@1"] == 100 and r["oracle@1"]["precision"] == 100
    assert r["oracle@1"]["matches"] < r["oracle@3"]["matches"]
    assert 50 < r["oracle@1"]["recall"] < 100  # a subset of the 3 px ground truth
    # same mutual nearest neighbours, filtered at 1 px: oracle@1 ⊂ oracle@3 = the ground truth
    assert r["oracle@3"]["precision@1"] == pytest.approx(r["oracle@1"]["recall"])
    for n in ("nn", "nn-ratio"):
        assert 20 < r[n]["precision@1"] <= r[n]["precision"] <= 100
        assert r[n]["matches"] > 100
    assert r["oracle@3"]["recall"] > r["nn"]["recall"] and r["oracle@3"]["auc@10"] >= 90
    # the perfect selector among nn's matches: every one within 1 px, as many as nn has there
    assert r["nn-oracle@1"]["precision@1"] == 100 and r["nn-oracle@1"]["matches"] == pytest.approx(r["nn"]["matches"] * r["nn"]["precision@1"] / 100)


def test_paired_reads_pose_errors_and_methods_of_another_run_of_the_same_pairs(tmp_path, capsys):
    """``benchmarks.paired``: pose folders (thresholds in degrees), a method of another evaluation of
    the same pairs through --with, and one line for a folder of other pairs."""
    from benchmarks.paired import main as paired

    rng = np.random.default_rng(0)
    good, bad = rng.uniform(0, 4, 100), rng.uniform(8, 30, 100)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    np.savez(tmp_path / "a" / "pose_errors.npz", default=bad, **{"poselib/default": bad})
    np.savez(tmp_path / "b" / "pose_errors.npz", **{"nn+refiner": good})
    np.savez(tmp_path / "c" / "pose_errors.npz", **{"nn+refiner": good[:50]})
    paired([str(tmp_path / "a"), "--with", str(tmp_path / "b"), "--a", "nn+refiner", "--b", "default"])
    table = capsys.readouterr().out
    assert "AUC@5 [90% CI] | AUC@10 [90% CI] | AUC@20 [90% CI]" in table
    row = next(line for line in table.splitlines() if "| default |" in line)
    d5 = float(row.split("|")[3].split()[0])
    assert d5 == pytest.approx(auc_difference(good, bad, 5.0)[0], abs=0.05) and d5 > 50
    with pytest.raises(SystemExit):
        paired([str(tmp_path / "a"), "--with", str(tmp_path / "c"), "--a", "nn+refiner", "--b", "default"])
    assert "not the pairs of" in capsys.readouterr().err
