"""The CA's settings: read once with the others, and refused at start-up when wrong."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest

from gpucloud.config import Settings, SettingsError
from tests.support.server import GPUCLOUD


def test_the_ca_settings_are_read_from_the_environment() -> None:
    """If the three variables are set, then the settings hold the key file and the policy."""
    settings = Settings.from_env(
        {
            "GPUCLOUD_SSH_CA_KEY_FILE": "/etc/gpucloud/ssh_ca",
            "GPUCLOUD_SSH_CERT_DEFAULT_VALIDITY": "1h",
            "GPUCLOUD_SSH_CERT_MAX_VALIDITY": "2d",
        }
    )
    assert settings.ssh_ca_key_file == Path("/etc/gpucloud/ssh_ca")
    policy = settings.ssh_cert_policy()
    assert (policy.default, policy.maximum) == (dt.timedelta(hours=1), dt.timedelta(days=2))
    defaults = Settings.from_env({"GPUCLOUD_SSH_CA_KEY_FILE": ""})
    assert defaults.ssh_ca_key_file is None
    assert defaults.ssh_cert_policy().default == dt.timedelta(hours=8)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        (
            {"GPUCLOUD_SSH_CERT_MAX_VALIDITY": "a day"},
            "GPUCLOUD_SSH_CERT_MAX_VALIDITY: Cannot read",
        ),
        ({"GPUCLOUD_SSH_CERT_DEFAULT_VALIDITY": "0h"}, "GPUCLOUD_SSH_CERT_DEFAULT_VALIDITY"),
        ({"GPUCLOUD_SSH_CERT_DEFAULT_VALIDITY": "48h"}, "from 30s up to GPUCLOUD_SSH_CERT_MAX"),
        ({"GPUCLOUD_SSH_CERT_MAX_VALIDITY": "10s"}, "from 30s up to GPUCLOUD_SSH_CERT_MAX"),
    ],
)
def test_a_validity_that_cannot_apply_is_a_settings_error_naming_it(
    environ: dict[str, str], named: str
) -> None:
    """If a validity cannot be read, or the default is outside 30 s to the maximum, then
    the settings are refused with a message that names the variable."""
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(environ)


def test_serve_refuses_to_start_with_a_bad_validity(tmp_path: Path) -> None:
    """If GPUCLOUD_SSH_CERT_MAX_VALIDITY is unreadable, then `gpucloud serve` exits at
    once with the variable's name, instead of serving certificates it cannot bound."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    env["GPUCLOUD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'gpucloud.db'}"
    env["GPUCLOUD_SSH_CERT_MAX_VALIDITY"] = "forever"
    result = subprocess.run(
        [GPUCLOUD, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "GPUCLOUD_SSH_CERT_MAX_VALIDITY" in result.stderr + result.stdout
