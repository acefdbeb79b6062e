import shutil
import warnings

import cv2
import numpy as np
import pytest

from pygmatch.data import PairSet, list_images, make_pairs, read_gray, resize_crop
from pygmatch.errors import PygmatchError


def test_pairs_are_reproducible(embedded_dir):
    a = make_pairs(embedded_dir, seed=5, pairs_per_image=2, max_images=2)
    b = make_pairs(embedded_dir, seed=5, pairs_per_image=2, max_images=2)
    c = make_pairs(embedded_dir, seed=6, pairs_per_image=2, max_images=2)
    assert len(a) == 4 and a.image0.shape == (4, 480, 640) and a.image0.dtype == np.uint8
    np.testing.assert_array_equal(a.image1, b.image1)
    np.testing.assert_array_equal(a.H_0to1, b.H_0to1)
    assert not np.allclose(a.H_0to1, c.H_0to1)
    assert a.names[:2] == [list_images(embedded_dir)[0].stem + "_0", list_images(embedded_dir)[0].stem + "_1"]


def test_image1_is_image0_seen_through_H(embedded_dir):
    pairs = make_pairs(embedded_dir, seed=0, max_images=1, photometric=None)
    H = pairs.H_0to1[0]
    warped = cv2.warpPerspective(pairs.image0[0], H, (640, 480))
    np.testing.assert_array_equal(warped, pairs.image1[0])


def test_save_load_round_trip(tmp_path, embedded_dir):
    pairs = make_pairs(embedded_dir, seed=1, max_images=3)
    pairs.save(tmp_path / "p.npz")
    back = PairSet.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(back.image0, pairs.image0)
    np.testing.assert_array_equal(back.image1, pairs.image1)
    np.testing.assert_allclose(back.H_0to1, pairs.H_0to1)
    assert back.names == pairs.names


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(image0=np.zeros((2, 48, 64), np.uint8), H_0to1=np.zeros((2, 3, 3))), "missing array.*image1"),
        (dict(image0=np.zeros((2, 48, 64), np.uint8), image1=np.zeros((2, 48, 60), np.uint8), H_0to1=np.zeros((2, 3, 3))), "same shape"),
        (dict(image0=np.zeros((2, 48, 64), np.uint8), image1=np.zeros((2, 48, 64), np.uint8), H_0to1=np.zeros((3, 3, 3))), r"expected \(2, 3, 3\)"),
        (dict(image0=np.zeros((2, 48, 64)), image1=np.zeros((2, 48, 64)), H_0to1=np.zeros((2, 3, 3))), "uint8"),
        (dict(image0=np.zeros((2, 48, 64), np.uint8), image1=np.zeros((2, 48, 64), np.uint8), H_0to1=np.full((2, 3, 3), np.nan)), "finite"),
    ],
)
def test_bad_pair_files_are_named_errors(tmp_path, arrays, message):
    path = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(PygmatchError, match=message) as e:
        PairSet.load(path)
    assert "bad.npz" in str(e.value)


def test_not_an_npz(tmp_path):
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(PygmatchError, match="x.npz: not a readable .npz"):
        PairSet.load(tmp_path / "x.npz")
    with pytest.raises(PygmatchError, match="no such pair file"):
        PairSet.load(tmp_path / "missing.npz")


def test_folder_errors(tmp_path):
    with pytest.raises(PygmatchError, match="no such folder"):
        list_images(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(PygmatchError, match="no images"):
        list_images(tmp_path)
    with pytest.raises(PygmatchError, match="not a folder"):
        list_images(tmp_path / "notes.txt")


def test_corrupt_and_tiny_images_are_skipped_and_counted(tmp_path, embedded_dir):
    for f in list_images(embedded_dir)[:2]:
        shutil.copy(f, tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((10, 12), np.uint8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs = make_pairs(tmp_path)
    assert len(pairs) == 2 and len(pairs.skipped) == 3
    assert any("broken.jpg" in str(w.message) for w in caught)
    assert any("tiny.png" in s and "smaller than" in s for s in pairs.skipped)


def test_all_images_corrupt_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(PygmatchError, match="none of the 1 images"):
            make_pairs(tmp_path)


def test_resize_crop_covers_the_target(embedded_dir):
    portrait = np.random.default_rng(0).integers(0, 255, (300, 100), np.uint8)
    assert resize_crop(portrait, (640, 480)).shape == (480, 640)  # small images are upscaled
    assert read_gray(list_images(embedded_dir)[0], (320, 240)).shape == (240, 320)


def test_saving_to_a_folder_or_a_read_only_folder_leaves_nothing(tmp_path, embedded_dir, readonly_dir):
    pairs = make_pairs(embedded_dir, max_images=1)
    (tmp_path / "sets").mkdir()
    with pytest.raises(PygmatchError, match=f"{tmp_path / 'sets'}: is a folder; give a file name such as {tmp_path / 'sets' / 'pairs.npz'}"):
        pairs.save(tmp_path / "sets")
    with pytest.raises(PygmatchError, match=f"{readonly_dir / 'p.npz'}: cannot write into the folder"):
        pairs.save(readonly_dir / "p.npz")
    assert list((tmp_path / "sets").iterdir()) == []  # no stray sets.tmp.npz either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["readonly", "sets"]
    pairs.save(tmp_path / "new" / "p.npz")  # a missing folder is created
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["p.npz"]


def test_singular_homographies_are_refused_by_pair_index(tmp_path, embedded_dir):
    pairs = make_pairs(embedded_dir, max_images=3)
    good = pairs.H_0to1.copy()
    for k, H, why in [(2, np.zeros((3, 3)), "all zeros"), (0, np.array([[1, 2, 3], [2, 4, 6], [0, 0, 1.0]]), "singular (determinant 0)")]:
        pairs.H_0to1 = good.copy()
        pairs.H_0to1[k] = H
        pairs.save(tmp_path / "p.npz")
        with pytest.raises(PygmatchError) as e:
            PairSet.load(tmp_path / "p.npz")
        assert str(e.value) == f"{tmp_path / 'p.npz'}: H_0to1[{k}] (pair {pairs.names[k]!r}) is {why}: a homography must be invertible"
    pairs.H_0to1 = good
    pairs.save(tmp_path / "p.npz")
    np.testing.assert_array_equal(PairSet.load(tmp_path / "p.npz").H_0to1, good)
