import pytest

from rewardkit.config import ConfigError, load_config

from ..conftest import REPO


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


BASE = "model: {name: x}\ndata: {train: a.jsonl}\n"


def test_unknown_key_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key train\.learning_rate"):
        load_config(write(tmp_path, BASE + "train: {learning_rate: 0.1}\n"))


def test_wrong_type_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.batch_size: expected an integer"):
        load_config(write(tmp_path, BASE + "train: {batch_size: eight}\n"))


def test_unknown_choice_lists_the_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.truncation: 'cut' is not one of"):
        load_config(write(tmp_path, "model: {name: x}\ndata: {train: a.jsonl, truncation: cut}\n"))


def test_missing_required_key(tmp_path):
    with pytest.raises(ConfigError, match="missing required key model.name"):
        load_config(write(tmp_path, "model: {}\ndata: {}\n"))


def test_dotted_overrides_apply_with_yaml_types(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["--train.lr", "3e-5", "--data.max_length=64", "--data.eval.path", "e.jsonl"])
    assert cfg.train.lr == pytest.approx(3e-5)
    assert cfg.data.max_length == 64
    assert cfg.data.eval.path == "e.jsonl"
    assert cfg.data.train.path == "a.jsonl"  # a plain string is a split with only a path


def test_override_with_unknown_key_fails(tmp_path):
    with pytest.raises(ConfigError, match="unknown key train.lrr"):
        load_config(write(tmp_path, BASE), ["--train.lrr", "1"])


def test_yaml_is_parsed_safely(tmp_path):
    with pytest.raises(Exception, match="could not determine a constructor|ConstructorError"):
        load_config(write(tmp_path, "model: !!python/object/apply:os.system ['echo hi']\n"))


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_example_config_loads(name):
    load_config(REPO / "configs" / name)
