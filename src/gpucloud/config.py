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
