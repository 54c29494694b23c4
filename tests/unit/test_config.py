from pathlib import Path

import pytest

from api.app import create_app
from shared.config import Settings
from workers.app import celery_config


def test_defaults_live_under_the_data_dir():
    settings = Settings.from_env({"FLOWBIN_DATA_DIR": "/tmp/fb"})
    assert settings.data_dir == Path("/tmp/fb")
    assert settings.sql_url == "sqlite:////tmp/fb/flowbin.db"
    assert settings.drive_root == Path("/tmp/fb/drive")


def test_typed_values_and_clear_errors():
    assert Settings.from_env({"FLOWBIN_API_PORT": "9000"}).api_port == 9000
    with pytest.raises(ValueError, match="FLOWBIN_API_PORT must be an integer"):
        Settings.from_env({"FLOWBIN_API_PORT": "nine"})


def test_step_time_limit_vocabulary():
    settings = Settings(default_step_timeout=300, visibility_timeout=3600)
    assert settings.step_time_limit(0) == 300
    assert settings.step_time_limit(None) == 300
    assert settings.step_time_limit(12) == 12
    # "none" still stays below the visibility timeout, so a running step is not redelivered.
    assert settings.step_time_limit(-1) == 3540
    assert settings.step_time_limit(10**6) == 3540


def test_to_env_round_trips():
    settings = Settings(data_dir=Path("/x"), api_port=1234, redis_url="redis://h:1/2")
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    "field, setting",
    [
        ("allowed_networks", "FLOWBIN_ALLOWED_NETWORKS"),
        ("webhook_allowed_networks", "FLOWBIN_WEBHOOK_ALLOWED_NETWORKS"),
    ],
)
def test_a_bad_network_setting_stops_the_api_and_the_workers_at_start(tmp_path, field, setting):
    settings = Settings(
        data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0", **{field: "10.0.0.0/8, intranet"}
    )
    message = f"{setting}: 'intranet' is not a network"
    with pytest.raises(ValueError, match=message):
        create_app(settings)
    with pytest.raises(ValueError, match=message):
        celery_config(settings)
