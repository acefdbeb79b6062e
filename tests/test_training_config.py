"""The run's configuration: flags, --config files and Python give the same TrainConfig and the same
one-line errors; the model section is the network's own config, the one source of its defaults."""
from dataclasses import fields

import pytest
import yaml

from pygmatch.errors import PygmatchError
from pygmatch.nn.candidate_graph import CandidateGraphConfig
from pygmatch.refinement import RefinerConfig
from pygmatch.training.config import DataConfig, OptimConfig, RefinerDataConfig, RefinerOptimConfig, RefinerTrainConfig, RunConfig, TrainConfig
from train import refiner
from train.run import parser, resolve


def test_config_round_trip(tmp_path):
    cfg = resolve(["--graph", "multiscale", "--ks", "4,8,all", "--rings", "disjoint", "--ortho-weight", "0.1", "--lr", "0.001",
                   "--bank", "a", "b:1,2", "--out", str(tmp_path / "r")])
    assert cfg.model.graph == {"name": "multiscale", "ks": [4, 8, "all"], "mode": "disjoint"}  # the transform's own parameters
    assert (cfg.model.ortho_weight, cfg.optim.lr, cfg.data.bank) == (0.1, 0.001, ["a", "b:1,2"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert "radius" not in path.read_text()  # only the chosen graph's parameters are recorded
    again = resolve(["--config", str(path)])
    assert again == cfg == TrainConfig.from_dict(yaml.safe_load(path.read_text()))
    assert resolve(["--config", str(path), "--lr", "0.01"]).optim.lr == 0.01  # flags override the file
    assert resolve(["--no-messages"]).model.messages is False
    path.write_text("graph: knn\nbogus: 3\n")
    with pytest.raises(PygmatchError, match="unknown key\\(s\\) bogus"):
        resolve(["--config", str(path)])


def test_the_flags_defaults_are_the_configs():
    """No flag declares a default of its own: each is its config field's, the model's included."""
    cfg = resolve([])
    assert (cfg.data, cfg.model, cfg.optim) == (DataConfig(), CandidateGraphConfig(), OptimConfig())
    assert cfg.model.graph == {"name": "knn", "k": 8}  # the shipped network's graph
    flags = vars(parser().parse_args([]))
    assert all(f.name in flags for f in fields(CandidateGraphConfig) if f.name != "graph")


def test_the_refiners_flags_are_its_configs(tmp_path):
    """train.refiner: the same derivation, its own data, model and optimiser defaults, the same run section."""
    cfg = resolve(["--out", str(tmp_path / "r")], RefinerTrainConfig, refiner.parser())
    assert (cfg.data, cfg.model, cfg.optim) == (RefinerDataConfig(), RefinerConfig(), RefinerOptimConfig())
    assert cfg.run == RunConfig(out=str(tmp_path / "r")) and (cfg.optim.batch_size, cfg.workers) == (512, 2)
    cfg = resolve(["--bank", "b", "--channels", "4", "--epochs", "2", "--out", str(tmp_path / "r")], RefinerTrainConfig, refiner.parser())
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert resolve(["--config", str(path)], RefinerTrainConfig, refiner.parser()) == cfg == RefinerTrainConfig.from_dict(cfg.to_dict())
    with pytest.raises(PygmatchError, match="refiner: layers: expected a positive int"):
        RefinerConfig(layers=0)
    with pytest.raises(PygmatchError, match="expected the sections data, model, optim, run"):
        RefinerTrainConfig.from_dict({"graph": {}})


def test_python_config_gets_the_flags_validation():
    with pytest.raises(PygmatchError, match="^lr: expected a positive float, got '-1'$"):
        OptimConfig(lr=-1)
    with pytest.raises(PygmatchError, match="^size: expected WIDTHxHEIGHT"):
        DataConfig(size=(640,))
    with pytest.raises(PygmatchError, match="^positive_px 4.0 must not exceed ignore_px 3.0$"):
        CandidateGraphConfig(positive_px=4, ignore_px=3)
    with pytest.raises(PygmatchError, match="^graph 'knn' takes k; got ks$"):
        CandidateGraphConfig(graph={"name": "knn", "ks": [4]})
    with pytest.raises(PygmatchError, match="^threshold: expected a probability threshold in \\[0, 1\\), got '5'$"):
        CandidateGraphConfig(threshold=5)
    assert DataConfig(size=[320, 240]).size == (320, 240)  # YAML lists become the flag's tuple
    assert DataConfig(difficulty="1,3").difficulty == (1.0, 3.0)


@pytest.mark.parametrize("text, message", [
    ("graph: nosuch\n", "graph: 'nosuch' is not one of"),
    ("batch_size: 0\n", "batch_size: expected a positive int, got '0'"),
    ("lr: -1\n", "lr: expected a positive float"),
    ("size: [640]\n", "size: expected WIDTHxHEIGHT"),
    ("messages: maybe\n", "messages: expected true or false"),
    ("model: {dim: -3}\n", "dim: expected a positive int"),
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


def test_validations_are_spaced_to_end_at_the_last_step():
    from pygmatch.training.run import validation_interval

    for every, total in ((500, 1428), (300, 6702), (300, 100), (300, 301), (50, 270)):
        interval = validation_interval(every, total)
        assert interval <= every and total - (total // interval) * interval < total // interval + 1, (every, total, interval)
    assert validation_interval(500, 1428) == 476 and validation_interval(300, 100) == 100  # 476 x 3 = 1428: the last step
