import tomllib

import pytest

from spikewatch.cli import main
from spikewatch.config import Config, config_from_dict, load_config
from spikewatch.errors import ConfigError

from .conftest import REPO


def test_config_toml_equals_builtin_defaults():
    with (REPO / "config.toml").open("rb") as handle:
        data = tomllib.load(handle)
    assert config_from_dict(data) == Config()


def test_every_option_is_in_config_toml():
    with (REPO / "config.toml").open("rb") as handle:
        data = tomllib.load(handle)
    for section, model in Config.model_fields.items():
        assert section in data, f"[{section}] missing from config.toml"
        for key in model.annotation.model_fields:
            assert key in data[section], f"{section}.{key} missing from config.toml"


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(ConfigError) as error:
        config_from_dict({"windows": {"lenght": 16}})
    message = str(error.value)
    assert "windows.lenght" in message
    assert "length" in message and "stride" in message


def test_bad_value_names_key_and_value():
    with pytest.raises(ConfigError) as error:
        config_from_dict({"encoder": {"kind": "snn"}})
    message = str(error.value)
    assert "encoder.kind" in message
    assert "'snn'" in message
    assert "'spikformer'" in message


def test_cross_field_rule_is_explained():
    with pytest.raises(ConfigError, match="windows.stride = 9 is larger than windows.length = 8"):
        config_from_dict({"windows": {"length": 8, "stride": 9}})
    with pytest.raises(ConfigError, match="patch_size = 3 must divide windows.length = 32"):
        config_from_dict({"encoder": {"patch_size": 3}})


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[windows\nlength = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_check_config_command(tmp_path, capsys):
    assert main(["check-config", str(REPO / "config.toml")]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[threshold]\nquantile = 1.5\n")
    assert main(["check-config", str(bad)]) == 2
    assert "threshold.quantile = 1.5" in capsys.readouterr().err
