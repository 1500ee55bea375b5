"""Settings come from GPUCLOUD_* variables, and a wrong one is named with what is wrong."""

from __future__ import annotations

import pytest

from gpucloud.config import Settings, SettingsError


def test_variables_set_their_settings_and_the_rest_keep_their_defaults() -> None:
    """If some GPUCLOUD_* variables are set, then they become those settings (numbers,
    booleans and JSON lists read as such), every other setting keeps its default, and
    variables gpucloud does not know are left alone."""
    settings = Settings.from_env(
        {
            "GPUCLOUD_DATABASE_URL": "sqlite:///x.db",
            "GPUCLOUD_RATE_LIMIT_BURST": "7",
            "GPUCLOUD_RATE_LIMIT_PER_SECOND": "0.5",
            "GPUCLOUD_RATE_LIMIT_ENABLED": "false",
            "GPUCLOUD_CORS_ORIGINS": '["https://console.example"]',
            "GPUCLOUD_TEST_REQUIRE_POSTGRES": "1",
            "PATH": "/bin",
        }
    )
    assert settings.database_url == "sqlite:///x.db"
    assert (settings.rate_limit_burst, settings.rate_limit_per_second) == (7, 0.5)
    assert settings.rate_limit_enabled is False
    assert settings.cors_origins == ["https://console.example"]
    assert settings.max_keys_per_owner == Settings().max_keys_per_owner


def test_an_empty_variable_leaves_an_optional_setting_unset() -> None:
    """If a variable of a setting that may be unset is empty, then the setting is unset."""
    assert Settings.from_env({"GPUCLOUD_REDIS_URL": ""}).redis_url is None


def test_every_wrong_variable_is_named_with_what_is_wrong() -> None:
    """If several variables hold values that cannot be used, then one error names each of
    them, so that all can be fixed at once."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "GPUCLOUD_RATE_LIMIT_BURST": "0",
                "GPUCLOUD_SQLITE_SYNCHRONOUS": "OFF",
                "GPUCLOUD_BODY_TIMEOUT_S": "soon",
            }
        )
    message = str(caught.value)
    for variable in (
        "GPUCLOUD_RATE_LIMIT_BURST",
        "GPUCLOUD_SQLITE_SYNCHRONOUS",
        "GPUCLOUD_BODY_TIMEOUT_S",
    ):
        assert variable in message, message


def test_a_list_that_is_not_json_is_refused_with_an_example() -> None:
    """If a list setting is not JSON, then the error names the variable and shows the form."""
    with pytest.raises(SettingsError, match=r'GPUCLOUD_CORS_ORIGINS: must be JSON, e\.g\. \["a"'):
        Settings.from_env({"GPUCLOUD_CORS_ORIGINS": "https://a.example"})


def test_a_misspelt_setting_in_code_is_refused() -> None:
    """If code builds settings with a name that is no setting, then that fails at once."""
    with pytest.raises(ValueError, match="rate_limit_bursts"):
        Settings(rate_limit_bursts=3)  # type: ignore[call-arg]
