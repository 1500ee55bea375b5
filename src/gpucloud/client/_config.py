"""Where the API key and the API URL come from: pure functions of flags, environment, files.

In order, the first that is set wins:

| | API key | API URL |
|---|---|---|
| 1. argument (CLI flag) | `api_key=` (`--api-key`) | `base_url=` (`--api-url`) |
| 2. gpucloud's environment | `GPUCLOUD_API_KEY` | `GPUCLOUD_API_URL` |
| 3. the hosted API's CLI set-up | profile `profile` (default `default`) of `~/.sesterce/credentials`, key `sesterce_api_key` | `SESTERCE_CLOUD_API_URL` |
| 4. default | none: an error | `http://127.0.0.1:8000` |

So users of the hosted API's official CLI need no new set-up. Nothing here reads the
environment or a file unless called, and every function takes them as arguments.
"""

from __future__ import annotations

import configparser
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_PROFILE = "default"
API_KEY_ENV = "GPUCLOUD_API_KEY"
API_URL_ENV = "GPUCLOUD_API_URL"
PROFILE_ENV = "GPUCLOUD_PROFILE"
SESTERCE_API_URL_ENV = "SESTERCE_CLOUD_API_URL"
CREDENTIALS_FIELD = "sesterce_api_key"
CREDENTIALS_FILE = Path(".sesterce") / "credentials"


class CredentialsFileError(ValueError):
    """The credentials file exists but cannot be read as an INI file."""


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """The API key and URL to use, and where each came from (for messages)."""

    api_key: str | None
    api_url: str
    profile: str
    api_key_source: str
    api_url_source: str
    credentials_path: Path


def credentials_path(home: Path) -> Path:
    """`~/.sesterce/credentials` under `home`."""
    return home / CREDENTIALS_FILE


def resolve(
    *,
    api_key: str | None = None,
    api_url: str | None = None,
    profile: str | None = None,
    environ: Mapping[str, str],
    home: Path,
) -> ResolvedConfig:
    """The API key and URL by the precedence in this module's docstring.

    The credentials file is read only when neither `api_key` nor `GPUCLOUD_API_KEY` is
    set; raises CredentialsFileError when it is read and is not an INI file.
    """
    profile = _set(profile) or _set(environ.get(PROFILE_ENV)) or DEFAULT_PROFILE
    path = credentials_path(home)

    key, key_source = _set(api_key), "the api_key argument"
    if key is None:
        key, key_source = _set(environ.get(API_KEY_ENV)), API_KEY_ENV
    if key is None:
        key = read_api_key(path, profile)
        key_source = f"profile {profile!r} of {path}" if key else "nowhere"

    url, url_source = _set(api_url), "the base_url argument"
    if url is None:
        url, url_source = _set(environ.get(API_URL_ENV)), API_URL_ENV
    if url is None:
        url, url_source = _set(environ.get(SESTERCE_API_URL_ENV)), SESTERCE_API_URL_ENV
    if url is None:
        url, url_source = DEFAULT_API_URL, "the default"

    return ResolvedConfig(
        api_key=key,
        api_url=url,
        profile=profile,
        api_key_source=key_source,
        api_url_source=url_source,
        credentials_path=path,
    )


def read_api_key(path: Path, profile: str) -> str | None:
    """The `sesterce_api_key` of `profile` in the credentials file; None if absent.

    Raises CredentialsFileError when the file exists but is not an INI file.
    """
    parser = _parser()
    try:
        with path.open(encoding="utf-8") as file:
            parser.read_file(file)
    except FileNotFoundError:
        return None
    except (configparser.Error, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CredentialsFileError(
            f"{path} is not a valid credentials file: {first_line}"
        ) from None
    if not parser.has_section(profile):
        return None
    return _set(parser.get(profile, CREDENTIALS_FIELD, fallback=None))


def write_api_key(path: Path, profile: str, api_key: str) -> None:
    """Store `api_key` as `profile`'s `sesterce_api_key`, keeping the other profiles.

    The file is replaced atomically and readable by its owner only (mode 0600), in a
    directory only its owner can enter. Raises CredentialsFileError as read_api_key.
    """
    parser = _parser()
    try:
        with path.open(encoding="utf-8") as file:
            parser.read_file(file)
    except FileNotFoundError:
        pass
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise CredentialsFileError(f"{path} is not a valid credentials file: {exc}") from None
    if not parser.has_section(profile):
        parser.add_section(profile)
    parser.set(profile, CREDENTIALS_FIELD, api_key.strip())

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created 0600 from the start: the secret is never readable by others, even briefly.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            parser.write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def _parser() -> configparser.ConfigParser:
    # No interpolation: a secret may hold a '%'.
    return configparser.ConfigParser(interpolation=None, default_section="__no_defaults__")


def _set(value: str | None) -> str | None:
    """The value stripped, or None when missing or blank (an empty variable is unset)."""
    if value is None:
        return None
    value = value.strip()
    return value or None
