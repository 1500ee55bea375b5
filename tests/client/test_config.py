"""Where the API key and URL come from: flags, then environment, then the credentials file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gpucloud.client import ConfigOrigin, resolve_config, save_api_key
from gpucloud.client._config import (
    DEFAULT_API_URL,
    CredentialsFileError,
    read_api_key,
    resolve,
    write_api_key,
)

FILE_KEY = "gck_from_the_file"
ENV_KEY = "gck_from_the_environment"
FLAG_KEY = "gck_from_the_flag"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home directory whose credentials file has a default and a work profile."""
    (tmp_path / ".sesterce").mkdir()
    (tmp_path / ".sesterce" / "credentials").write_text(
        f"[default]\nsesterce_api_key = {FILE_KEY}\n\n[work]\nsesterce_api_key=gck_work\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    ("flag", "environ", "expected", "source"),
    [
        (FLAG_KEY, {"GPUCLOUD_API_KEY": ENV_KEY}, FLAG_KEY, "the api_key argument"),
        (None, {"GPUCLOUD_API_KEY": ENV_KEY}, ENV_KEY, "GPUCLOUD_API_KEY"),
        (None, {"GPUCLOUD_API_KEY": "  "}, FILE_KEY, "profile 'default'"),
        (None, {}, FILE_KEY, "profile 'default'"),
        (None, {"GPUCLOUD_PROFILE": "work"}, "gck_work", "profile 'work'"),
    ],
)
def test_the_api_key_is_the_flag_then_the_environment_then_the_profile(
    home: Path, flag: str | None, environ: dict[str, str], expected: str, source: str
) -> None:
    """If several sources hold an API key, then the first of flag, env, file wins."""
    config = resolve(api_key=flag, environ=environ, home=home)
    assert config.api_key == expected
    assert config.api_key_source.startswith(source)


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        (
            "http://flag",
            {"GPUCLOUD_API_URL": "http://env", "SESTERCE_CLOUD_API_URL": "http://s"},
            "http://flag",
        ),
        (
            None,
            {"GPUCLOUD_API_URL": "http://env", "SESTERCE_CLOUD_API_URL": "http://s"},
            "http://env",
        ),
        (None, {"GPUCLOUD_API_URL": "", "SESTERCE_CLOUD_API_URL": "http://s"}, "http://s"),
        (None, {}, DEFAULT_API_URL),
    ],
)
def test_the_api_url_is_the_flag_then_gpucloud_then_sesterce_then_the_default(
    tmp_path: Path, flag: str | None, environ: dict[str, str], expected: str
) -> None:
    """If several sources name a URL, then the first of flag, GPUCLOUD_, SESTERCE_ wins."""
    assert resolve(api_url=flag, environ=environ, home=tmp_path).api_url == expected


def test_a_profile_flag_beats_the_profile_variable(home: Path) -> None:
    """If --profile and GPUCLOUD_PROFILE disagree, then the flag's profile is read."""
    config = resolve(profile="default", environ={"GPUCLOUD_PROFILE": "work"}, home=home)
    assert (config.profile, config.api_key) == ("default", FILE_KEY)


def test_no_file_or_an_unknown_profile_gives_no_key(home: Path, tmp_path: Path) -> None:
    """If the file or the profile is missing, then there is no API key, and no error."""
    assert resolve(profile="nope", environ={}, home=home).api_key is None
    assert resolve(environ={}, home=tmp_path / "elsewhere").api_key is None


def test_a_broken_file_is_an_error_only_when_it_is_needed(home: Path) -> None:
    """If the file is not INI, then reading it fails clearly; a flag avoids reading it."""
    (home / ".sesterce" / "credentials").write_text("sesterce_api_key = no section\n")
    with pytest.raises(CredentialsFileError, match="not a valid credentials file"):
        resolve(environ={}, home=home)
    assert resolve(api_key=FLAG_KEY, environ={}, home=home).api_key == FLAG_KEY


def test_writing_keeps_other_profiles_and_is_private(home: Path) -> None:
    """If a key is written, then the other profiles stay and only the owner can read it."""
    path = home / ".sesterce" / "credentials"
    write_api_key(path, "default", "gck_new")
    write_api_key(path, "staging", "gck_staging%with%percents")
    assert read_api_key(path, "default") == "gck_new"
    assert read_api_key(path, "work") == "gck_work"
    assert read_api_key(path, "staging") == "gck_staging%with%percents"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["credentials"]  # no temporary left


def test_a_new_file_is_in_a_private_directory_in_the_official_cli_format(tmp_path: Path) -> None:
    """If no file exists, then one is made, in a 0700 directory, as `[profile]` + key = value."""
    path = tmp_path / ".sesterce" / "credentials"
    write_api_key(path, "default", " gck_secret \n")
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # The hosted API's CLI reads `[profile]` headers and `key = value` lines.
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    assert lines == ["[default]", "sesterce_api_key = gck_secret"]


def test_the_public_resolution_says_where_each_value_came_from(
    clean_env: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If resolve_config is asked, then each value comes with its origin, as a Client would use it."""
    monkeypatch.setenv("HOME", str(home))
    found = resolve_config()
    assert (found.api_key, found.api_key_origin) == (FILE_KEY, ConfigOrigin.CREDENTIALS_FILE)
    assert (found.api_url, found.api_url_origin) == (DEFAULT_API_URL, ConfigOrigin.DEFAULT)
    given = resolve_config(api_key=FLAG_KEY, environ={"GPUCLOUD_API_URL": "http://api"}, home=home)
    assert (given.api_key_origin, given.api_url_origin) == (
        ConfigOrigin.ARGUMENT,
        ConfigOrigin.ENVIRONMENT,
    )
    assert given.api_url_source == "GPUCLOUD_API_URL"
    nothing = resolve_config(environ={}, home=home / "elsewhere")
    assert (nothing.api_key, nothing.api_key_origin) == (None, ConfigOrigin.NOWHERE)


def test_save_api_key_writes_the_profile_that_resolution_then_reads(home: Path) -> None:
    """If a key is saved under a profile, then resolving that profile finds it in the file."""
    path = save_api_key("gck_saved", profile="ci", home=home)
    assert path == home / ".sesterce" / "credentials"
    found = resolve_config(profile="ci", environ={}, home=home)
    assert (found.api_key, found.api_key_origin) == ("gck_saved", ConfigOrigin.CREDENTIALS_FILE)
    assert read_api_key(path, "default") == FILE_KEY
