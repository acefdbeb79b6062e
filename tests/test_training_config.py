"""The run's configuration: flags, --config files (both layouts) and Python give the same
TrainConfig and the same one-line errors; old flat configs and the shipped weights still load."""
import pytest
import yaml

from pygmatch.errors import PygmatchError
from pygmatch.nn.config import MatcherConfig
from pygmatch.training.config import DataConfig, GraphConfig, ModelConfig, OptimConfig, TrainConfig
from train.run import resolve

from .conftest import ROOT


def test_config_round_trip(tmp_path):
    cfg = resolve(["--graph", "multiscale", "--ks", "4,8,all", "--rings", "disjoint", "--lr", "0.001", "--out", str(tmp_path / "r")])
    assert cfg.graph.intra == {"name": "multiscale", "ks": [4, 8, "all"], "mode": "disjoint"}  # the transform's own parameters
    assert cfg.matcher_config().num_scales == 3  # derived from the graph, not stored
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert "num_scales" not in path.read_text() and "radius" not in path.read_text()
    again = resolve(["--config", str(path)])
    assert again == cfg == TrainConfig.from_dict(yaml.safe_load(path.read_text()))
    assert resolve(["--config", str(path), "--lr", "0.01"]).optim.lr == 0.01  # flags override the file
    assert resolve(["--no-descriptor-prior"]).matcher_config().descriptor_prior is False
    path.write_text("graph: knn\nbogus: 3\n")
    with pytest.raises(PygmatchError, match="unknown key\\(s\\) bogus"):
        resolve(["--config", str(path)])


def test_python_config_gets_the_flags_validation():
    with pytest.raises(PygmatchError, match="^lr: expected a positive float, got '-1'$"):
        OptimConfig(lr=-1)
    with pytest.raises(PygmatchError, match="^size: expected WIDTHxHEIGHT"):
        DataConfig(size=(640,))
    with pytest.raises(PygmatchError, match="^gt_match_px 4.0 must not exceed gt_unmatched_px 3.0$"):
        DataConfig(gt_match_px=4, gt_unmatched_px=3)
    with pytest.raises(PygmatchError, match="^graph 'knn' takes k; got ks$"):
        GraphConfig(intra={"name": "knn", "ks": [4]})
    with pytest.raises(PygmatchError, match="has no rotary positions"):
        TrainConfig(model=ModelConfig(conv="gat"))
    assert DataConfig(size=[320, 240]).size == (320, 240)  # YAML lists become the flag's tuple


def test_old_flat_configs_and_the_shipped_weights_keep_loading():
    from pygmatch.checkpoint import load_model

    old = yaml.safe_load((ROOT / "benchmarks/results/long-run/noprior-config.yaml").read_text())
    assert "graph" in old and old["graph"] == "complete" and "ks" in old  # the first, flat layout
    cfg = TrainConfig.from_dict(old)
    assert cfg.graph.intra == {"name": "complete"} and cfg.graph.cross == {"name": "complete"}
    assert (cfg.data.gt_match_px, cfg.data.max_keypoints, cfg.model.descriptor_prior, cfg.optim.max_steps) == (1.0, 512, False, 20000)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    saved = load_model(ROOT / "benchmarks/results/long-run/noprior-best.pt").cfg
    assert cfg.matcher_config().architecture() == saved.architecture()
    shipped = load_model("default").cfg  # saved in the flat layout with num_scales
    assert shipped.graph == {"name": "complete"} and shipped.cross == {"name": "complete"} and shipped.num_scales == 1
    assert MatcherConfig.from_dict(shipped.to_dict()) == shipped
    with pytest.raises(PygmatchError, match="num_scales 2 does not match"):
        MatcherConfig.from_dict({"graph": {"graph": "knn"}, "num_scales": 2})


@pytest.mark.parametrize("text, message", [
    ("graph: nosuch\n", "graph: 'nosuch' is not one of"),
    ("batch_size: 0\n", "batch_size: expected a positive int, got '0'"),
    ("lr: -1\n", "lr: expected a positive float"),
    ("size: [640]\n", "size: expected WIDTHxHEIGHT"),
    ("deep_supervision: maybe\n", "deep_supervision: expected true or false"),
])
def test_config_file_values_get_the_flags_validation(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(PygmatchError, match=f"c.yaml: {message}"):
        resolve(["--config", str(path)])


def test_a_binary_config_file_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(PygmatchError, match="not a text \\(YAML\\) file|not valid YAML"):
        resolve(["--config", str(path)])
