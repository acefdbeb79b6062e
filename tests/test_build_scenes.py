"""``benchmarks.build_scenes``: a scene reconstructed from its photographs alone (the embedded four
lund_door photographs) reads as an ``eval.pose`` scene whose relative poses agree with the true ones."""
import shutil

import pytest

from benchmarks.build_scenes import main
from pygmatch.data.scenes import load_scene
from pygmatch.evaluation.pose import pose_error

from .conftest import ROOT

pytest.importorskip("pycolmap")
MINI = ROOT / "pygmatch" / "datasets" / "pose-mini" / "lund_door"


def test_a_scene_is_rebuilt_from_its_photographs(tmp_path, capsys):
    scene = tmp_path / "scenes" / "door"
    shutil.copytree(MINI / "images", scene / "images")
    names = sorted(p.name for p in (scene / "images").iterdir())
    listed = [f"{a} {b}" for i, a in enumerate(names) for b in names[i + 1:]] + [f"{names[0]} missing.jpg"]
    (tmp_path / "pairs").mkdir()
    (tmp_path / "pairs" / "door.txt").write_text("\n".join(listed) + "\n")
    main(["--scenes", str(tmp_path / "scenes"), "--pairs", str(tmp_path / "pairs")])
    assert '"registered": 4' in capsys.readouterr().out
    built, truth = load_scene(scene), load_scene(MINI)
    assert built.pairs == [tuple(line.split()) for line in listed[:-1]]  # the pair with an unregistered image is left out
    for a, b in built.pairs:
        est, true = built.truth(a, b), truth.truth(a, b)
        assert pose_error(est.R, est.t, true.R, true.t) < 2.0  # degrees
    main(["--scenes", str(tmp_path / "scenes"), "--pairs", str(tmp_path / "pairs")])  # built already: skipped
    assert "gt/ exists" in capsys.readouterr().out
