"""The feature bank: what it stores is what extraction gives, it resumes and extends without
changing a pair, bad banks are refused in one line, and its augmentations keep the ground truth exact."""
from __future__ import annotations

import json
import math
import shutil

import cv2
import numpy as np
import pytest

from pygmatch.data import EMBEDDED_IMAGES, make_pair, pair_rng
from pygmatch.data.augment import KeypointSubset, RandomSimilarity, SwapImages
from pygmatch.data.bank import BankConfig, FeatureBank, build_bank, source_files
from pygmatch.data.dataset import BankPairs
from pygmatch.data.images import read_gray
from pygmatch.errors import PygmatchError
from pygmatch.data.features import Keypoints, detect, extract
from pygmatch.data.geometry import warp_points
from pygmatch.data.ground_truth import ground_truth_matches, reprojection_error

CFG = BankConfig((str(EMBEDDED_IMAGES),), max_keypoints=300, shard_pairs=3, seed=5, difficulties=(1.0, 2.0))


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    return build_bank(tmp_path_factory.mktemp("bank") / "b", CFG, pairs=6, workers=1, progress=False)


def test_bank_holds_exactly_what_extraction_gives(bank):
    assert len(bank) == 6
    files = source_files(CFG.sources)
    order = np.random.default_rng(CFG.seed).permutation(len(files))
    for p in (0, 4):
        image = read_gray(files[order[p]], CFG.size)
        im0, im1, H = make_pair(image, pair_rng(CFG.seed, p), CFG.difficulties[p % 2])
        kp0, kp1, H_bank, difficulty = bank.keypoints(p)
        assert difficulty == CFG.difficulties[p % 2]
        np.testing.assert_array_equal(H_bank, H)
        for stored, im in ((kp0, im0), (kp1, im1)):
            fresh = extract(im, "sift", CFG.max_keypoints)
            np.testing.assert_array_equal(stored.xy, fresh.xy)
            np.testing.assert_array_equal(stored.descriptors, fresh.descriptors)  # uint8 storage is lossless
        assert bank.raw(p)[0].descriptors.dtype == np.uint8


def test_extend_and_resume_keep_every_pair(bank, tmp_path):
    root = tmp_path / "b"
    shutil.copytree(bank.root, root)
    before = [FeatureBank(root).raw(p)[0].xy.copy() for p in range(6)]
    (root / "shard-00002.tmp").mkdir()  # an interrupted build left half a shard
    (root / "shard-00002.tmp" / "H.npy").write_bytes(b"junk")
    grown = build_bank(root, CFG, pairs=8, workers=1, progress=False)
    assert len(grown) == 9 and not (root / "shard-00002.tmp").exists()
    for p in range(6):
        np.testing.assert_array_equal(grown.raw(p)[0].xy, before[p])


def test_bad_banks_are_refused_in_one_line(bank, tmp_path):
    with pytest.raises(PygmatchError, match="other settings.*max_keypoints"):
        build_bank(bank.root, BankConfig(CFG.sources, max_keypoints=500, shard_pairs=3, seed=5), pairs=6, workers=1)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(PygmatchError, match="not empty and holds no bank.json"):
        build_bank(foreign, CFG, pairs=3, workers=1)
    assert (foreign / "notes.txt").read_text() == "mine"
    with pytest.raises(PygmatchError, match="not a feature bank"):
        FeatureBank(foreign)
    (foreign / "bank.json").write_text('{"format": "something else"}')
    with pytest.raises(PygmatchError, match="not a pygmatch feature bank"):
        FeatureBank(foreign)
    broken = tmp_path / "broken"
    shutil.copytree(bank.root, broken)
    desc = broken / "shard-00001" / "desc0.npy"
    desc.write_bytes(desc.read_bytes()[: desc.stat().st_size // 2])  # truncated
    with pytest.raises(PygmatchError, match="shard-00001.*desc0.npy"):
        FeatureBank(broken).raw(4)
    with pytest.raises(PygmatchError, match="holds sift keypoints.*orb"):
        bank.check_compatible("orb", 300, (640, 480))
    with pytest.raises(PygmatchError, match="at most 300 keypoints"):
        bank.check_compatible("sift", 1024, (640, 480))


def test_random_similarity_is_what_a_real_warp_gives():
    """Warp a real image by the augmentation's similarity, re-detect: the moved keypoints land on
    the re-detected ones, with the same orientation and scale."""
    image = read_gray(sorted(EMBEDDED_IMAGES.iterdir())[2])
    size = (image.shape[1], image.shape[0])
    aug = RandomSimilarity(degrees=40, log_scale=0.3, shift=0.05)
    S, theta, s = aug.matrix(np.random.default_rng(3), size)
    assert abs(theta) > math.radians(5)
    kp = detect(image, "sift", 500)
    _, moved, H = aug(kp, kp, np.eye(3), np.random.default_rng(3), size)
    np.testing.assert_allclose(H, S)
    real = detect(cv2.warpPerspective(image, S, size, flags=cv2.INTER_LINEAR), "sift", 2000)
    err = reprojection_error(moved.xy, real.xy, np.eye(3))
    j = err.argmin(1)
    close = err[np.arange(len(j)), j] < 1.0
    assert close.mean() > 0.5
    dori = np.angle(np.exp(1j * (real.ori[j[close]] - moved.ori[close])))
    assert np.median(np.abs(dori)) < math.radians(3)
    assert abs(np.median(real.scale[j[close]] / moved.scale[close]) - 1) < 0.05


def test_augmented_ground_truth_stays_exact(bank):
    """Each augmented pair's ground truth, traced back to the stored keypoints, is a correspondence
    under the stored H: the augmentations never invent or move a match."""
    kp0, kp1, H, _ = bank.keypoints(1)
    # the score field carries each keypoint's identity through the augmentation
    kp0 = Keypoints(kp0.xy, kp0.scale, kp0.ori, np.arange(len(kp0), dtype=np.float32), kp0.descriptors)
    kp1 = Keypoints(kp1.xy, kp1.scale, kp1.ori, 10000 + np.arange(len(kp1), dtype=np.float32), kp1.descriptors)
    original = reprojection_error(kp0.xy, kp1.xy, H)
    for step in (SwapImages(p=1.0), RandomSimilarity(), KeypointSubset(200, p_random=1.0)):
        a0, a1, H2 = step(kp0, kp1, H, np.random.default_rng(0), (640, 480))
        g0, _ = ground_truth_matches(a0.xy, a1.xy, H2)
        i = np.nonzero(g0 >= 0)[0]
        assert len(i) > 20, step
        ids0, ids1 = a0.score[i].astype(int), a1.score[g0[i]].astype(int)
        if isinstance(step, SwapImages):  # errors are now measured in the stored image 0's pixels
            ids0, ids1 = ids1, ids0
            assert reprojection_error(kp1.xy, kp0.xy, np.linalg.inv(H))[ids1 - 10000, ids0].max() < 3.0
        elif isinstance(step, RandomSimilarity):  # image 1 was scaled by at most exp(0.2)
            S = H2 @ np.linalg.inv(H)
            np.testing.assert_allclose(a1.xy[g0[i]], warp_points(kp1.xy[ids1 - 10000], S), atol=1e-3)
            assert original[ids0, ids1 - 10000].max() < 3.0 * math.exp(0.2)
        else:
            assert original[ids0, ids1 - 10000].max() < 3.0
        assert (ids0 < 10000).all() and (ids1 >= 10000).all()


def test_bank_pairs_are_reproducible_and_vary_by_epoch(bank):
    data = BankPairs(bank, max_keypoints=200, seed=1, match_px=1.0, unmatched_px=2.0)
    a, b = data[2], data[2]
    assert a.x_0.shape[0] <= 200 and a.x_1.shape[0] <= 200
    assert torch_equal(a.pos_1, b.pos_1) and torch_equal(a.gt_matches, b.gt_matches)
    data.set_epoch(1)
    assert not torch_equal(data[2].pos_1, a.pos_1)
    # ground truth at 1 px: every match within 1 px under the stored H
    H = a.H_0to1[0].double().numpy()
    err = reprojection_error(a.pos_0.numpy(), a.pos_1.numpy(), H)
    i, j = a.gt_matches.numpy()
    assert len(i) > 10 and err[i, j].max() < 1.0


def torch_equal(x, y) -> bool:
    return x.shape == y.shape and bool((x == y).all())


def test_training_refuses_a_bank_that_cannot_serve_it_in_one_line(bank, tmp_path):
    import subprocess
    import sys

    from .conftest import ROOT

    def train(*args):
        return subprocess.run([sys.executable, "-m", "train.run", "--bank", str(bank.root), "--preset", "tiny", "--val-images", "2",
                               "--max-steps", "1", "--out", str(tmp_path / "run"), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)

    for args, message in ((["--max-keypoints", "512"], "at most 300 keypoints per image"),
                          (["--features", "orb", "--max-keypoints", "100"], "holds sift keypoints"),
                          (["--max-keypoints", "100", "--batch-size", "8"], "6 pairs per epoch, fewer than --batch-size 8"),
                          (["--max-keypoints", "100", "--augment", "flip"], "unknown augmentation(s) flip")):
        r = train(*args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr[-1500:]
        assert not (tmp_path / "run" / "last.ckpt").exists()
    r = subprocess.run([sys.executable, "-m", "train.bank", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b2")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "nowhere: no such folder" in r.stderr and "Traceback" not in r.stderr


def test_a_damaged_bank_is_refused_and_rebuilt_exactly(bank, tmp_path):
    root = tmp_path / "b"
    shutil.copytree(bank.root, root)
    before = [bank.raw(p)[1].descriptors.copy() for p in range(6)]
    shutil.rmtree(root / "shard-00000")  # a shard folder deleted: training must not use what lies before or after the gap
    with pytest.raises(PygmatchError, match=r"shard-00000 is missing \(1 of 2 shards\).*train.bank"):
        FeatureBank(root)
    shutil.copytree(bank.root / "shard-00000", root / "shard-00000")
    (root / "shard-00001" / "desc1.npy").unlink()  # one file deleted inside a shard
    with pytest.raises(PygmatchError, match=r"shard-00001: damaged shard \(desc1.npy is missing\)"):
        FeatureBank(root)
    shutil.rmtree(root / "shard-00000")  # both: a gap and a damaged shard
    with pytest.warns(UserWarning, match=r"shard-00001: damaged \(desc1.npy is missing\); rebuilding it"):
        fixed = build_bank(root, CFG, pairs=3, workers=1, progress=False)  # fewer pairs than the bank holds: repairs it all
    assert fixed.built_pairs == 6 and fixed.rebuilt_shards == [1] and len(fixed) == 6
    for p in range(6):
        np.testing.assert_array_equal(fixed.raw(p)[1].descriptors, before[p])
    score = root / "shard-00000" / "score0.npy"
    score.write_bytes(score.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match="score0.npy is unreadable"):
        again = build_bank(root, CFG, pairs=6, workers=1, progress=False)
    assert again.built_pairs == 3 and again.rebuilt_shards == [0]
    assert build_bank(root, CFG, pairs=6, workers=1, progress=False).built_pairs == 0


def test_a_failed_start_does_not_block_the_corrected_run(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for k in range(3):
        (broken / f"{k}.jpg").write_bytes(b"not a jpeg")
    root = tmp_path / "bank"
    with pytest.raises(PygmatchError, match="none of the 3 source images could be read"):
        build_bank(root, BankConfig((str(broken),), max_keypoints=100, shard_pairs=2), pairs=2, workers=1, progress=False)
    assert not (root / "bank.json").exists()
    # a bank.json without any finished shard (left by an older build that failed) gives way to the new settings
    root.mkdir(exist_ok=True)
    (root / "bank.json").write_text(json.dumps(BankConfig((str(broken),), max_keypoints=100, shard_pairs=2).to_json()))
    good = build_bank(root, BankConfig(CFG.sources, max_keypoints=100, shard_pairs=2), pairs=2, workers=1, progress=False)
    assert len(good) == 2 and good.config.sources == CFG.sources


def test_bank_command_refuses_what_cannot_be_written_up_front(tmp_path, readonly_dir, capsys):
    from pygmatch.commands.train_bank import main

    from .conftest import one_line_error, run_command

    code, _, err = run_command(main, ["--data", EMBEDDED_IMAGES, "--out", readonly_dir / "bank", "--pairs", 3], capsys)
    assert code == 2 and "cannot" in one_line_error(err) and "bank" in err
    code, _, err = run_command(main, ["--data", EMBEDDED_IMAGES, "--out", tmp_path / "huge", "--pairs", 10**9], capsys)
    line = one_line_error(err)
    assert code == 2 and "1,000,000,000 more pairs would need about" in line and "TB" in line and "is free there" in line, line
    assert not (tmp_path / "huge").exists()
