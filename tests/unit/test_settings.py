from pathlib import Path

import pytest

from eikit.cli import main
from eikit.settings import Settings, load_settings


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


def test_only_the_documented_names_are_read(monkeypatch):
    # A container's unrelated PORT, HOST, WORKERS or ACCELERATOR must not change eikit.
    for name, field in Settings.model_fields.items():
        monkeypatch.delenv(str(field.alias), raising=False)
        monkeypatch.setenv(name.upper(), "1")
        monkeypatch.setenv(name, "1")
        monkeypatch.setenv(str(field.alias).lower(), "1")  # names are exact, as on Linux
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("ACCELERATOR", "tpu")  # would be refused if it were read
    settings = load_settings()
    assert settings == Settings()
    assert settings.port == 8080 and settings.host == "0.0.0.0" and settings.workers is None
    assert settings.accelerator == "auto"
    # the CLI still overrides by field name, and the documented names still work
    assert load_settings(port=1234, workers=3).port == 1234
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9000")
    monkeypatch.setenv("EIKIT_HOST", "127.0.0.1")
    assert (load_settings().port, load_settings().host) == (9000, "127.0.0.1")


@pytest.mark.parametrize(
    "given, kept",
    [
        ("20", "INFO"),  # what the SageMaker SDK sets (container_log_level=logging.INFO)
        ("10", "DEBUG"),
        ("25", "25"),  # between names: kept as a number
        (" 40 ", "ERROR"),
        ("0", "NOTSET"),
        ("info", "INFO"),
        ("Warn", "WARNING"),
        ("fatal", "CRITICAL"),
    ],
)
def test_log_level_takes_names_and_numbers(monkeypatch, given, kept):
    monkeypatch.setenv("SAGEMAKER_CONTAINER_LOG_LEVEL", given)
    settings = load_settings()
    assert settings.log_level == kept
    if given.strip().isdigit():
        assert load_settings(log_level=int(given)).log_level == kept  # a number from code too
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings


@pytest.mark.parametrize("given", ["verbose", "-5", "", "Level 25"])
def test_an_unknown_log_level_is_a_clear_error(monkeypatch, capsys, given):
    monkeypatch.setenv("SAGEMAKER_CONTAINER_LOG_LEVEL", given)
    assert main(["detect"]) == 2
    err = capsys.readouterr().err
    assert "SAGEMAKER_CONTAINER_LOG_LEVEL" in err and "Traceback" not in err
