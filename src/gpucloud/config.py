"""Settings: every environment variable gpucloud reads, in one place, read once.

`Settings.from_env()` reads `GPUCLOUD_*` from the environment; tests build
`Settings(...)` directly. Nothing here runs at import time.

A plain pydantic model rather than pydantic-settings: reading a dozen variables needs
no more, and pydantic-settings' sources (files, secrets managers, command lines) cost
every server process 6 MB it would never use (docs/decisions.md).
"""

from __future__ import annotations

import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    from gpucloud.ca import ValidityPolicy

ENV_PREFIX = "GPUCLOUD_"


class SettingsError(ValueError):
    """An environment variable holds a value gpucloud cannot use; the message names it."""


class Settings(BaseModel):
    """The server's configuration; one field per `GPUCLOUD_<NAME>` variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of the `GPUCLOUD_*` variables (os.environ by default); any
        other setting takes its default.

        A variable for a list holds JSON (`["https://a.example"]`); an empty variable for
        a setting that may be unset leaves it unset. Raises SettingsError, naming every
        variable that is wrong and why.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems = []
        for name, field in cls.model_fields.items():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            annotation = field.annotation
            if raw == "" and _admits_none(annotation):
                values[name] = None
            elif typing.get_origin(annotation) in (list, dict):
                try:
                    values[name] = json.loads(raw)
                except ValueError:
                    problems.append(f'{ENV_PREFIX}{name.upper()}: must be JSON, e.g. ["a", "b"]')
            else:
                values[name] = raw
        if not problems:
            try:
                return cls(**values)
            except ValidationError as exc:
                for error in exc.errors():
                    if error["loc"]:
                        variable = ENV_PREFIX + str(error["loc"][0]).upper()
                        problems.append(f"{variable}: {error['msg']}")
                    else:  # a rule over several settings: its message names them
                        problems.append(str(error["msg"]).removeprefix("Value error, "))
        raise SettingsError("Invalid settings: " + "; ".join(problems))

    # Storage
    database_url: str = Field(
        default="sqlite:///gpucloud.db",
        description="SQLAlchemy URL: sqlite:///relative.db, sqlite:////abs.db or postgresql://…",
    )
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    sqlite_synchronous: str = Field(
        default="FULL",
        pattern="^(FULL|NORMAL)$",
        description="FULL survives power loss; NORMAL survives process crashes only",
    )
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    db_pool_timeout_s: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=5000, ge=0)
    db_connect_timeout_s: float = Field(default=5.0, gt=0)

    # The contract's limits
    max_keys_per_owner: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    # Abuse and retries
    rate_limit_enabled: bool = True
    rate_limit_per_second: float = Field(
        default=20.0, gt=0, description="Requests per second per API key, sustained"
    )
    rate_limit_burst: int = Field(default=40, ge=1, description="Requests per API key in 1 s")
    auth_failures_per_minute: int = Field(
        default=20, ge=1, description="Failed authentications per client address per minute"
    )
    body_timeout_s: float = Field(default=10.0, gt=0, description="To receive a request body")
    header_timeout_s: float = Field(
        default=5.0, gt=0, description="To receive a request's line and headers"
    )

    # Answers kept per owner and version (the list, authorized_keys), in bytes per process
    response_cache_bytes: int = Field(default=8 * 1024 * 1024, ge=0)

    # Operations
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")
    redis_url: str | None = Field(
        default=None, description="redis://host:6379/0 to share rate limits across processes"
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-For gives the client address (uvicorn's)",
    )
    cors_origins: list[str] = Field(default_factory=list)
    metrics_dir: Path | None = Field(
        default=None,
        description="Where the workers of one server share their counts for /metrics; "
        "`gpucloud serve --workers N` makes one",
    )

    # The SSH certificate authority (SPEC 11; docs/certificates.md)
    ssh_ca_key_file: Path | None = Field(
        default=None,
        description="The CA's signing key, made by `gpucloud ca init`; unset: no certificates",
    )
    ssh_cert_default_validity: str = Field(
        default="8h", description="A certificate's validity when the request names none"
    )
    ssh_cert_max_validity: str = Field(
        default="24h", description="The longest validity a certificate request may ask for"
    )

    @model_validator(mode="after")
    def _validities_readable(self) -> Settings:
        # Checked when the settings are made, so that `serve` refuses to start with a
        # validity it could not apply, rather than answering every certificate request 400.
        self.ssh_cert_policy()
        return self

    def ssh_cert_policy(self) -> ValidityPolicy:
        """The certificate validity rule of the two settings.

        Raises ValueError naming the variable that cannot be read, or saying that the
        default is not between 30 s and the maximum.
        """
        # Imported here: the CA (and `cryptography`) is not loaded with the settings.
        from gpucloud.ca.certificates import ValidityPolicy

        return ValidityPolicy.parse(self.ssh_cert_default_validity, self.ssh_cert_max_validity)


def _admits_none(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(annotation)
