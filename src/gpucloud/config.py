"""Settings: every environment variable gpucloud reads, in one place, read once.

`Settings()` reads `GPUCLOUD_*` from the environment; tests build `Settings(...)`
directly. Nothing here runs at import time.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The server's configuration; one field per `GPUCLOUD_<NAME>` variable."""

    model_config = SettingsConfigDict(env_prefix="GPUCLOUD_", extra="ignore", frozen=True)

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

    # Operations
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")
    redis_url: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
