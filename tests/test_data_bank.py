"""The feature bank: what it stores is what extraction gives, it resumes and extends without
changing a pair, bad banks are refused in one line, and its pairs become candidate graphs labelled by
the stored homography."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pygmatch.data import EMBEDDED_IMAGES, make_pair, pair_rng
from pygmatch.data.bank import BankConfig, FeatureBank, build_bank, source_files
from pygmatch.data.images import read_gray
from pygmatch.errors import PygmatchError
from pygmatch.data.features import extract
from pygmatch.data.geometry import warp_points
from pygmatch.nn.candidate_graph import NODE_FEATURES, CandidateGraphConfig
from pygmatch.training.data import VIEW_LABEL_PX, BankGraphs, split_banks

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


def test_a_bank_at_another_contrast_threshold_holds_what_extraction_gives_there(bank, tmp_path):
    """SIFT's contrast threshold is part of a bank's settings: a bank.json written before it existed
    was built at OpenCV's default, 0.04; one built at 0.02 stores what extraction gives at 0.02."""
    description = json.loads((bank.root / "bank.json").read_text())
    assert description["contrast_threshold"] == 0.04
    old = tmp_path / "old"
    shutil.copytree(bank.root, old)
    del description["contrast_threshold"]
    (old / "bank.json").write_text(json.dumps(description))
    assert FeatureBank(old).config == CFG
    loose_cfg = BankConfig(CFG.sources, max_keypoints=5000, shard_pairs=1, seed=5, contrast_threshold=0.02)
    loose = build_bank(tmp_path / "loose", loose_cfg, pairs=1, workers=1, progress=False)
    image = read_gray(source_files(CFG.sources)[np.random.default_rng(5).permutation(len(source_files(CFG.sources)))[0]], CFG.size)
    im0, _, _ = make_pair(image, pair_rng(5, 0), 1.0)
    stored = loose.keypoints(0)[0]
    np.testing.assert_array_equal(stored.xy, extract(im0, "sift", 5000, 0.02).xy)
    assert len(stored) > 1.3 * len(extract(im0, "sift", 5000, 0.04))
    with pytest.raises(PygmatchError, match="contrast threshold must be a number in"):
        build_bank(tmp_path / "bad", BankConfig(CFG.sources, contrast_threshold=2), pairs=1, workers=1)
    assert not (tmp_path / "bad").exists()  # refused before any work
    description["contrast_threshold"] = 2
    (old / "bank.json").write_text(json.dumps(description))
    with pytest.raises(PygmatchError, match="bank.json: contrast threshold must be a number in"):
        FeatureBank(old)


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


def test_bank_graphs_are_the_stored_pairs_labelled_by_their_homography(bank):
    train, val = split_banks([str(bank.root)], 2, "sift", (640, 480))
    assert [(t.first, t.stop) for t in train] == [(0, 4)] and [(v.first, v.stop) for v in val] == [(4, 6)]
    graphs = BankGraphs(train, CandidateGraphConfig(), workers=1, progress=False)
    assert len(graphs) == 4
    for p, g in enumerate(graphs):
        kp0, kp1, H, difficulty = bank.keypoints(p)
        np.testing.assert_array_equal(g.H[0].numpy(), H)
        assert g.difficulty.tolist() == [difficulty] and g.image_size.tolist() == [[640.0, 480.0]]
        # each candidate sits on stored keypoints; its label is its reprojection error under the stored H
        pos0, pos1 = g.pos0.double().numpy(), g.pos1.double().numpy()
        assert all((kp0.xy == xy).all(1).any() for xy in g.pos0.numpy()) and all((kp1.xy == xy).all(1).any() for xy in g.pos1.numpy())
        np.testing.assert_allclose(g.error.numpy(), np.linalg.norm(warp_points(pos0, H) - pos1, axis=1), rtol=1e-5, atol=1e-3)
        assert g.x.shape == (len(pos0), len(NODE_FEATURES)) and (g.x[:, -2:] == 0).all()  # plain SIFT: no view tilt
        # real SIFT pairs: both kinds of label, true matches and wrong candidates
        assert (g.error < 1).sum() >= 10 and (g.error > 10).sum() >= 10
    only2 = BankGraphs(split_banks([f"{bank.root}:2"], 0, "sift", (640, 480))[0], CandidateGraphConfig(), workers=1, progress=False)
    assert len(only2) == 3 and all(g.difficulty.item() == 2.0 for g in only2)  # pairs 1, 3 and 5
    with pytest.raises(PygmatchError, match="holds difficulties 1.0, 2.0, none of 3.0"):
        split_banks([f"{bank.root}:3"], 0, "sift", (640, 480))
    with pytest.raises(PygmatchError, match="holds 6 pairs, not more than --val-pairs 6"):
        split_banks([str(bank.root)], 6, "sift", (640, 480))
    with pytest.raises(PygmatchError, match="images are 640x480, this training uses 320x240"):
        split_banks([str(bank.root)], 2, "sift", (320, 240))


def test_training_refuses_a_bank_that_cannot_serve_it_in_one_line(bank, tmp_path):
    import subprocess
    import sys

    from .conftest import ROOT

    def train(*args):
        return subprocess.run([sys.executable, "-m", "train.run", "--bank", str(bank.root), "--val-images", "2", "--max-steps", "1",
                               "--out", str(tmp_path / "run"), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)

    for args, message in ((["--val-pairs", "6"], "holds 6 pairs, not more than --val-pairs 6"),
                          (["--val-pairs", "2", "--size", "320x240"], "the bank's images are 640x480, this training uses 320x240 (--size)"),
                          (["--val-pairs", "2", "--batch-size", "8"], "fewer than --batch-size 8")):
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


def test_a_bank_with_views_keeps_each_images_views_and_gives_the_rounds_graphs(tmp_path):
    """``--views``: each image's own keypoints (those of a plain bank, bit for bit) followed by the
    keypoints of its simulated views that the rounds can pick, each with its view; the training
    graphs are the rounds' candidates (``view_candidate_graph``), labelled by the homography."""
    from pygmatch.data.views import FULL_SET_VIEWS, round_sets, synthesised_keypoints, view_map

    cfg = BankConfig((str(EMBEDDED_IMAGES),), max_keypoints=300, shard_pairs=2, seed=5, difficulties=(4.0,), views=True)
    views = build_bank(tmp_path / "views", cfg, pairs=2, workers=1, progress=False)
    plain = build_bank(tmp_path / "plain", BankConfig(cfg.sources, max_keypoints=300, shard_pairs=2, seed=5, difficulties=(4.0,)),
                       pairs=2, workers=1, progress=False)
    assert "simulated views" in repr(views) and FeatureBank(views.root).config.views
    im0, _ = views.images(0)
    vk0, vk1, H, difficulty = views.view_keypoints(0)
    kp0, kp1, H_plain, _ = plain.keypoints(0)
    np.testing.assert_array_equal(H, H_plain)
    assert difficulty == 4.0
    own = views.keypoints(0)[0]
    np.testing.assert_array_equal(own.xy, kp0.xy)
    np.testing.assert_array_equal(own.descriptors, kp0.descriptors)
    # the full set: the image's own keypoints (view 0), then what synthesised_keypoints finds, in its views' order
    synthetic = synthesised_keypoints(im0, extract(im0, "sift", 300), 300)
    assert len(vk0) == len(kp0) + len(synthetic) and (vk0.view[:len(kp0)] == 0).all()
    np.testing.assert_array_equal(vk0.keypoints.xy[len(kp0):], synthetic.keypoints.xy)
    np.testing.assert_allclose(vk0.keypoints.descriptors[len(kp0):], synthetic.keypoints.descriptors, atol=1e-6)
    np.testing.assert_array_equal(vk0.tilts[len(kp0):], synthetic.tilts)
    assert vk0.views == FULL_SET_VIEWS
    for v in (1, len(FULL_SET_VIEWS) - 1):
        np.testing.assert_array_equal(vk0.affine[v], view_map(cfg.size, FULL_SET_VIEWS[v]))
    # one graph per round with enough candidates, labelled by the stored homography
    graphs = BankGraphs(split_banks([str(views.root)], 0, "sift", cfg.size)[0], CandidateGraphConfig(), workers=1, progress=False).graphs
    first = [g for g in graphs if float(g.H[0, 0, 0]) == float(H[0, 0])]
    assert 1 <= len(first) <= len(round_sets(vk0))
    tilt_columns = first[-1].x[:, -2:]
    assert (tilt_columns > 0).any()  # candidates of tilted views
    err = np.linalg.norm(warp_points(first[-1].pos0.numpy(), H) - first[-1].pos1.numpy(), axis=1)
    np.testing.assert_allclose(first[-1].error.numpy() * VIEW_LABEL_PX, err, rtol=1e-4, atol=1e-3)  # labels in units of 3 px
    with pytest.raises(PygmatchError, match="built without views"):
        plain.view_keypoints(0)
    # a view index outside the views is a damaged shard, found on opening
    shard = views.root / "shard-00000"
    bad = np.load(shard / "view0.npy")
    bad[0] = len(FULL_SET_VIEWS)
    np.save(shard / "view0.npy", bad)
    with pytest.raises(PygmatchError, match="views outside"):
        FeatureBank(views.root).view_keypoints(0)
