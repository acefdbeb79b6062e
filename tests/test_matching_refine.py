"""The refiners (``pygmatch.refinement``) leave a perfect match where it is, and bad matched
positions are one ``PygmatchError``, not a raw ``ValueError`` / ``IndexError`` from deep inside."""
from __future__ import annotations

import numpy as np
import pytest

from pygmatch.data import EMBEDDED_IMAGES, list_images, make_pair, pair_rng, read_gray
from pygmatch.data.features import extract
from pygmatch.data.geometry import warp_points
from pygmatch.errors import PygmatchError
from pygmatch.matching.nearest import nearest_neighbor_match
from pygmatch.refinement import LearnedRefiner, PatchRefiner, exact_matches

REFINERS = {"ncc": PatchRefiner, "learned": LearnedRefiner.load}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return read_gray(list_images(EMBEDDED_IMAGES)[1])


@pytest.fixture(scope="module")
def self_matches(photo):
    """A photograph's SIFT keypoints matched to themselves: every match is perfect."""
    kp = extract(photo)
    return kp.xy.astype(np.float64), kp.xy.astype(np.float64)


@pytest.mark.parametrize("name", REFINERS)
def test_matches_of_identical_images_stay_exactly_where_they_are(name, photo, self_matches):
    points0, points1 = self_matches
    refined = REFINERS[name]().refine(photo, photo.copy(), points0, points1)
    assert len(points0) > 200
    np.testing.assert_array_equal(refined, points1)  # before: moved 0.05 px on average, up to 0.9 px


def test_exact_matches_are_exactly_those_whose_patches_agree(photo, self_matches):
    """Perfect matches among moved ones: the unmoved are found, the moved (by a whole pixel, whose
    centre may agree on a flat patch, or by a fraction) and those whose patch leaves the image are not."""
    points0, _ = self_matches
    h, w = photo.shape
    interior = np.nonzero(((points0 >= 8) & (points0 <= np.array([w - 9, h - 9]))).all(1))[0][:300]
    points0 = np.concatenate([points0[interior], [[3.0, 40.0]]])  # the last one's patch leaves the image
    points1 = points0.copy()
    moved = np.arange(len(points0)) % 3 > 0
    points1[moved] += np.where((np.arange(len(points0)) % 3 == 1)[moved, None], [[1.0, 0.0]], [[0.3, -0.2]])
    same = exact_matches(photo, photo.copy(), points0, points1, 7)
    assert len(points0) > 200
    np.testing.assert_array_equal(same, ~moved & (np.arange(len(points0)) < len(points0) - 1))


@pytest.mark.parametrize("name", REFINERS)
def test_a_warped_pair_is_still_refined(name):
    """The exact-match rule does not stop real refinement: on a homography pair the refined
    positions are closer to the truth than the detected ones."""
    im0, im1, H = make_pair(read_gray(list_images(EMBEDDED_IMAGES)[0]), pair_rng(5, 0), 1.0)
    kp0, kp1 = extract(im0), extract(im1)
    m, _ = nearest_neighbor_match(kp0.descriptors, kp1.descriptors)
    p0, p1 = kp0.xy[m[:, 0]].astype(np.float64), kp1.xy[m[:, 1]].astype(np.float64)
    near = np.linalg.norm(warp_points(p0, H) - p1, axis=1) < 3
    p0, p1 = p0[near], p1[near]
    assert not exact_matches(im0, im1, p0, p1, 7).any()
    refined = REFINERS[name]().refine(im0, im1, p0, p1)
    before = np.linalg.norm(warp_points(p0, H) - p1, axis=1)
    after = np.linalg.norm(warp_points(p0, H) - refined, axis=1)
    assert np.median(after) < 0.8 * np.median(before)


@pytest.mark.parametrize("name", REFINERS)
@pytest.mark.parametrize("case, expected", [
    ("nan in points1", "points1 has 1 position(s) that are NaN or infinite (the first: row 2"),
    ("nan in points0", "points0 has 1 position(s) that are NaN or infinite (the first: row 2"),
    ("inf in points1", "points1 has 5 position(s) that are NaN or infinite"),
    ("unequal lengths", "one row per match, got 5 and 3 rows"),
    ("empty points0", "one row per match, got 0 and 5 rows"),
    ("three columns", "must be a (K, 2) array of pixel positions, got shape (5, 3)"),
    ("not numbers", "must be a (K, 2) array of pixel positions, got list"),
])
def test_bad_positions_are_one_line(name, case, expected, photo):
    p = np.array([[100.0, 100], [200, 150], [300, 200], [120, 300], [50, 60]])
    nan = np.where(np.arange(5)[:, None] == 2, np.nan, p)
    points0, points1 = {"nan in points1": (p, nan), "nan in points0": (nan, p), "inf in points1": (p, p + np.inf),
                        "unequal lengths": (p, p[:3]), "empty points0": (np.zeros((0, 2)), p),
                        "three columns": (np.c_[p, p[:, :1]], np.c_[p, p[:, :1]]), "not numbers": ([["a", "b"]], p)}[case]
    with pytest.raises(PygmatchError) as e:
        REFINERS[name]().refine(photo, photo, points0, points1)
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("image", [np.zeros((0, 0), np.uint8), np.zeros((40, 40, 3), np.uint8), np.full((40, 40), "x")])
def test_bad_images_are_one_line_even_without_matches(image):
    with pytest.raises(PygmatchError, match="refinement needs gray images"):
        PatchRefiner().refine(image, image, np.zeros((0, 2)), np.zeros((0, 2)))


def test_no_matches_refine_to_no_matches(photo):
    out = LearnedRefiner.load().refine(photo, photo, np.zeros((0, 2)), np.zeros((0, 2)))
    assert out.shape == (0, 2) and out.dtype == np.float64


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    from pygmatch.data.bank import BankConfig, build_bank

    cfg = BankConfig((str(EMBEDDED_IMAGES),), max_keypoints=512, shard_pairs=3, seed=2, difficulties=(1.0, 2.0))
    return build_bank(tmp_path_factory.mktemp("rbank") / "b", cfg, pairs=6, workers=1, progress=False)


def test_patches_are_kept_as_cut_and_an_interrupted_run_continues(bank, tmp_path, monkeypatch):
    import pygmatch.training.refiner as tr
    from pygmatch.refinement import RefinerConfig
    from pygmatch.training.pair_cache import cached_pairs

    cfg = RefinerConfig()
    plain = tr.bank_patches(bank.root, cfg, per_pair=16, workers=1, progress=False)
    computed, original = [], tr.pair_patches

    def stops_at_pair_3(b, pair, **kw):
        if pair == 3:
            raise KeyboardInterrupt
        computed.append(pair)
        return original(b, pair, **kw)
    monkeypatch.setattr(tr, "pair_patches", stops_at_pair_3)
    with pytest.raises(KeyboardInterrupt):
        tr.bank_patches(bank.root, cfg, per_pair=16, workers=1, progress=False, cache=tmp_path / "c")
    assert cached_pairs(tmp_path / "c") == 3

    def counts(b, pair, **kw):
        computed.append(pair)
        return original(b, pair, **kw)
    computed.clear()
    monkeypatch.setattr(tr, "pair_patches", counts)
    resumed = tr.bank_patches(bank.root, cfg, per_pair=16, workers=1, progress=False, cache=tmp_path / "c")
    assert computed == [3, 4, 5]
    for a, b in zip((plain.templates, plain.windows, plain.offset, plain.pair), (resumed.templates, resumed.windows, resumed.offset, resumed.pair)):
        np.testing.assert_array_equal(a, b)
    # other patch settings: the kept pairs are not reused
    with pytest.warns(UserWarning, match="made from another bank or with other settings"):
        other = tr.bank_patches(bank.root, cfg, per_pair=8, workers=1, progress=False, cache=tmp_path / "c")
    assert computed == [3, 4, 5, 0, 1, 2, 3, 4, 5] and len(other) < len(plain)
