"""Keypoint selection: ANMS's suppression radii against brute force, what ``spread`` keeps on
points and on real photographs, and the pipelines' default."""
import numpy as np
import pytest

from pygmatch.data.features import SPREAD_CANDIDATES, detect
from pygmatch.data.selection import spread, strongest, suppression_radii
from pygmatch.errors import PygmatchError
from pygmatch.pipeline import Extractor, Pipeline


def brute_force_radii(xy, score):
    order = np.argsort(-score, kind="stable")
    rank = np.empty(len(xy), np.int64)
    rank[order] = np.arange(len(xy))
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
    d[rank[None, :] >= rank[:, None]] = np.inf
    return d.min(axis=1)


@pytest.mark.parametrize("seed", range(3))
def test_suppression_radii_are_the_distance_to_the_nearest_stronger_keypoint(seed):
    """Clusters (where the k-d tree's neighbours hold a stronger keypoint), isolated points (where
    they do not) and equal scores (ordered by index)."""
    rng = np.random.default_rng(seed)
    xy = np.r_[rng.normal(200, 5, (600, 2)), rng.uniform(0, 1000, (400, 2))]
    score = np.r_[rng.integers(0, 20, 600).astype(float), rng.gamma(2.0, size=400)]
    np.testing.assert_allclose(suppression_radii(xy, score), brute_force_radii(xy, score))
    assert np.isinf(suppression_radii(xy[:1], score[:1])).all() and len(suppression_radii(xy[:0], score[:0])) == 0


def test_spread_covers_the_image_where_the_strongest_cluster():
    """Strong keypoints crowd one corner; the strongest take only those, spread takes the strongest
    of them and then the keypoints elsewhere, in decreasing radius."""
    rng = np.random.default_rng(0)
    crowd = rng.uniform(0, 100, (500, 2))
    elsewhere = rng.uniform(0, 1000, (500, 2))
    xy, score = np.r_[crowd, elsewhere], np.r_[10 + rng.uniform(size=500), rng.uniform(size=500)]
    assert (strongest(score, 100) < 500).all()
    kept = spread(xy, score, 100)
    assert len(kept) == len(set(kept)) == 100 and kept[0] == np.argmax(score)
    assert (kept >= 500).sum() > 80  # mostly outside the crowd
    radius = suppression_radii(xy, score)
    assert radius[kept].min() >= np.delete(radius, kept).max()  # the largest radii


def test_spread_sift_keypoints_are_among_the_strongest_candidates_and_cover_more_of_a_real_image(image):
    budget = 256
    top, spread_kp = detect(image, "sift", budget, 0.02), detect(image, "sift", budget, 0.02, "spread")
    candidates = detect(image, "sift", SPREAD_CANDIDATES * budget, 0.02)
    assert len(top) == len(spread_kp) == budget
    known = {tuple(p) for p in candidates.xy}
    assert all(tuple(p) in known for p in spread_kp.xy)
    # the descriptors are those the candidates were detected with
    at = {(tuple(p), o): d.tobytes() for p, o, d in zip(candidates.xy, candidates.ori, candidates.descriptors)}
    assert all(at[(tuple(p), o)] == d.tobytes() for p, o, d in zip(spread_kp.xy, spread_kp.ori, spread_kp.descriptors))

    def occupied_cells(kp, cell=40):
        return len({(int(x // cell), int(y // cell)) for x, y in kp.xy})

    assert occupied_cells(spread_kp) > 1.3 * occupied_cells(top)


def test_the_pipelines_spread_sift_below_4096_keypoints():
    assert Extractor("sift", 1024).selection == "spread" and Extractor("sift", 4096).selection == "strongest"
    assert Extractor("orb", 1024).selection == "strongest"
    assert Extractor("sift", 4096, selection="spread").selection == "spread"
    assert "selection='spread'" in repr(Pipeline.load("nn", max_keypoints=2048).extractor)
    with pytest.raises(PygmatchError, match="unknown keypoint selection 'best'; choose from strongest, spread"):
        Pipeline.load("nn", selection="best")
    with pytest.raises(PygmatchError, match="unknown keypoint selection"):
        detect(np.zeros((64, 64), np.uint8), "sift", 10, 0.04, "Spread")


def test_a_store_records_a_spread_selection_and_keeps_its_earlier_record_for_the_strongest():
    """``store.json`` (``pipeline_config``): the strongest keypoints, what every store held before
    the selection existed, keep the record they had; spread keypoints are another configuration."""
    from pygmatch.sfm import pipeline_config

    strongest_4096 = pipeline_config(Pipeline.load("nn", max_keypoints=4096))["pipeline"]
    assert "selection" not in strongest_4096 and "contrast_threshold=0.02)" in strongest_4096
    spread_1024, strongest_1024 = (pipeline_config(Pipeline.load("nn", max_keypoints=1024, selection=s)) for s in ("spread", "strongest"))
    assert "selection='spread'" in spread_1024["pipeline"] and spread_1024 != strongest_1024
