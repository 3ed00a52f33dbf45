from pathlib import Path

import pytest

from eikit.cli import main
from eikit.settings import Settings, load_settings, settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_follow_the_sagemaker_contract(monkeypatch):
    for name in list(Settings.model_fields):
        monkeypatch.delenv(str(Settings.model_fields[name].alias), raising=False)
    settings = load_settings()
    assert settings.port == 8080
    assert settings.base_dir == Path("/opt/ml") and settings.model_dir == Path("/opt/ml/model")
    assert settings.program == "inference.py"
    assert settings.max_payload_in_mb == 6
    assert settings.default_accept == "application/json"
    assert settings.model_server_timeout == 60


def test_environment_names_are_sagemakers(monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9090")
    monkeypatch.setenv("SAGEMAKER_CONTAINER_LOG_LEVEL", "10")
    monkeypatch.setenv("SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT", "true")
    monkeypatch.setenv("EIKIT_ACCELERATOR", "CPU")
    settings = load_settings()
    assert settings.port == 9090 and settings.log_level == "DEBUG"
    assert settings.accelerator_present and settings.accelerator == "cpu"
    assert load_settings(port=1234).port == 1234  # the CLI's overrides win


def test_to_env_round_trips(monkeypatch):
    settings = load_settings(port=7000, workers=3, strict_accelerator=True)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings


def test_bad_values_are_refused_with_the_variable_name(monkeypatch, capsys):
    monkeypatch.setenv("EIKIT_ACCELERATOR", "tpu")
    assert main(["detect"]) == 2
    assert "EIKIT_ACCELERATOR" in capsys.readouterr().err
    with pytest.raises(ValueError):
        load_settings(port=0)


def test_readme_table_lists_every_setting_as_the_code_defines_it():
    assert settings_table() in README.read_text(), (
        "README's settings table is out of date: paste the output of `python -m eikit.settings`"
    )
