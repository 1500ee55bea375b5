"""Where the API key and the API URL come from: pure functions of flags, environment, files.

In order, the first that is set wins:

| | API key | API URL |
|---|---|---|
| 1. argument (CLI flag) | `api_key=` (`--api-key`) | `base_url=` (`--api-url`) |
| 2. gpucloud's environment | `GPUCLOUD_API_KEY` | `GPUCLOUD_API_URL` |
| 3. the hosted API's CLI set-up | profile `profile` (default `default`) of `~/.sesterce/credentials`, key `sesterce_api_key` | `SESTERCE_CLOUD_API_URL` |
| 4. default | none: an error | `http://127.0.0.1:8000` |

So users of the hosted API's official CLI need no new set-up. Nothing here reads the
environment or a file unless called. `resolve_config` (public) reads the process's
environment and home directory unless given others; `resolve` takes them as arguments.
`ResolvedConfig` says where each value came from, as a `ConfigOrigin` (for programs) and
as a label in words (for messages).
"""

from __future__ import annotations

import configparser
import contextlib
import enum
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


class ConfigOrigin(enum.StrEnum):
    """Where a resolved value came from: the rows of this module's table."""

    ARGUMENT = "argument"  # api_key= / base_url= (a CLI's --api-key / --api-url)
    ENVIRONMENT = "environment"  # GPUCLOUD_API_KEY, GPUCLOUD_API_URL, SESTERCE_CLOUD_API_URL
    CREDENTIALS_FILE = "credentials file"  # the profile's sesterce_api_key
    DEFAULT = "default"  # the default API URL
    NOWHERE = "nowhere"  # no API key anywhere


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """The API key and URL to use, and where each came from.

    `api_key_origin`/`api_url_origin` are for programs to branch on; `api_key_source`/
    `api_url_source` say the same in words, for messages ("GPUCLOUD_API_KEY", "profile
    'default' of /home/ada/.sesterce/credentials").
    """

    api_key: str | None
    api_url: str
    profile: str
    api_key_source: str
    api_url_source: str
    credentials_path: Path
    api_key_origin: ConfigOrigin
    api_url_origin: ConfigOrigin


def credentials_path(home: Path) -> Path:
    """`~/.sesterce/credentials` under `home`."""
    return home / CREDENTIALS_FILE


def resolve_config(
    *,
    api_key: str | None = None,
    api_url: str | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> ResolvedConfig:
    """The API key and URL a `Client` made with these arguments would use, and their origins.

    `environ` defaults to the process's environment, `home` to the user's home directory.
    Raises CredentialsFileError when the credentials file is needed and is not an INI file.
    """
    return resolve(
        api_key=api_key,
        api_url=api_url,
        profile=profile,
        environ=os.environ if environ is None else environ,
        home=Path(os.path.expanduser("~")) if home is None else home,
    )


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

    key, key_source, key_origin = _set(api_key), "the api_key argument", ConfigOrigin.ARGUMENT
    if key is None:
        key, key_source = _set(environ.get(API_KEY_ENV)), API_KEY_ENV
        key_origin = ConfigOrigin.ENVIRONMENT
    if key is None:
        key = read_api_key(path, profile)
        if key:
            key_source, key_origin = f"profile {profile!r} of {path}", ConfigOrigin.CREDENTIALS_FILE
        else:
            key_source, key_origin = "nowhere", ConfigOrigin.NOWHERE

    url, url_source, url_origin = _set(api_url), "the base_url argument", ConfigOrigin.ARGUMENT
    for variable in (API_URL_ENV, SESTERCE_API_URL_ENV):
        if url is None:
            url, url_source = _set(environ.get(variable)), variable
            url_origin = ConfigOrigin.ENVIRONMENT
    if url is None:
        url, url_source, url_origin = DEFAULT_API_URL, "the default", ConfigOrigin.DEFAULT

    return ResolvedConfig(
        api_key=key,
        api_url=url,
        profile=profile,
        api_key_source=key_source,
        api_url_source=url_source,
        credentials_path=path,
        api_key_origin=key_origin,
        api_url_origin=url_origin,
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


def save_api_key(api_key: str, *, profile: str | None = None, home: Path | None = None) -> Path:
    """Store `api_key` in the credentials file, as `gpucloud login` does; returns the file.

    `profile` defaults to `default`, `home` to the user's home directory; the file is
    written as `write_api_key` says. Raises CredentialsFileError, or OSError.
    """
    path = credentials_path(Path(os.path.expanduser("~")) if home is None else home)
    write_api_key(path, _set(profile) or DEFAULT_PROFILE, api_key)
    return path


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
