"""The user's side of the CLI: where the API key and URL come from, and `gpucloud login`.

A thin shell over `gpucloud.client`, its public names only: the precedence of flags,
environment and the credentials file is `resolve_config`'s; the errors are the client's,
printed as one line. The client (and httpx) is imported only when a command runs, so that
`--help` and shell completion start fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from gpucloud.cli import output

if TYPE_CHECKING:
    from gpucloud.client import Client, GpuCloudError, ResolvedConfig

CONNECTION = "Connection"

ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key. Else GPUCLOUD_API_KEY, else the profile's in ~/.sesterce/credentials.",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
ApiUrlOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        help="API URL. Else GPUCLOUD_API_URL, else SESTERCE_CLOUD_API_URL, "
        "else http://127.0.0.1:8000.",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="Profile of ~/.sesterce/credentials. Else GPUCLOUD_PROFILE, else default.",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]


@dataclass(frozen=True, slots=True)
class Connection:
    """The connection flags of one command, as given (None when not given)."""

    api_key: str | None = None
    api_url: str | None = None
    profile: str | None = None

    def resolve(self) -> ResolvedConfig:
        """The API key and URL by the client's precedence; exits 1 on a broken file."""
        from gpucloud.client import CredentialsFileError, resolve_config

        try:
            return resolve_config(
                api_key=self.api_key, api_url=self.api_url, profile=self.profile, home=Path.home()
            )
        except CredentialsFileError as exc:
            fail(str(exc))


def fail(message: str) -> NoReturn:
    """Print `message` as one error line on stderr and exit 1."""
    output.error(message)
    raise typer.Exit(1)


@contextmanager
def session(connection: Connection, *, timeout: float | None = None) -> Iterator[Client]:
    """A client for the command; any client error becomes one line on stderr and exit 1.

    Exits 2 (usage) for an API URL that is not http(s)://.
    """
    from gpucloud.client import DEFAULT_TIMEOUT, Client, GpuCloudError

    config = connection.resolve()
    if config.api_key is None:
        fail(_no_api_key(config))
    try:
        client = Client(
            api_key=config.api_key, base_url=config.api_url, timeout=timeout or DEFAULT_TIMEOUT
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--api-url'") from None
    try:
        with client:
            yield client
    except GpuCloudError as exc:
        fail(explain(exc, config))


def explain(exc: GpuCloudError, config: ResolvedConfig) -> str:
    """The error's message, with what the user can do about it when the API does not say."""
    from gpucloud.client import AuthenticationError, RateLimitedError

    message = exc.message.rstrip(".")
    if isinstance(exc, AuthenticationError) and exc.status_code is not None:
        return (
            f"{message} (the API key from {_source(config)}, "
            f"for {config.api_url}); check it, or store another with `gpucloud login`"
        )
    if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
        return f"{message}; try again in {exc.retry_after:.0f} s"
    return message


def tilde(path: Path) -> str:
    """`path` with the home directory written `~`, as users think of it."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def _source(config: ResolvedConfig) -> str:
    """Where the API key came from, in the CLI's words."""
    from gpucloud.client import ConfigOrigin

    if config.api_key_origin is ConfigOrigin.ARGUMENT:
        return "--api-key"
    if config.api_key_origin is ConfigOrigin.CREDENTIALS_FILE:
        return f"profile {config.profile!r} of {tilde(config.credentials_path)}"
    return config.api_key_source


def _no_api_key(config: ResolvedConfig) -> str:
    return (
        "No API key: pass --api-key, set GPUCLOUD_API_KEY, or run `gpucloud login` "
        f"(profile {config.profile!r} of {tilde(config.credentials_path)} has none)"
    )


def login(
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="The API key to store. Else asked for (hidden), or read from stdin.",
            show_default=False,
        ),
    ] = None,
    api_url: ApiUrlOption = None,
    profile: ProfileOption = None,
    verify: Annotated[
        bool,
        typer.Option("--verify/--no-verify", help="Check the key against the API first."),
    ] = True,
) -> None:
    """Store your API key in ~/.sesterce/credentials (readable by you only).

    The file is the hosted API's official CLI's: one INI section per profile, key
    sesterce_api_key. Every other gpucloud command then finds the key there.

    Example: gpucloud login --profile default
    """
    from gpucloud.client import CredentialsFileError, save_api_key

    secret = (api_key or _ask_for_api_key()).strip()
    if not secret:
        fail("No API key given; paste the key that `gpucloud api-keys create` printed")
    config = Connection(api_key=secret, api_url=api_url, profile=profile).resolve()
    count = _count_keys(secret, config.api_url) if verify else None
    try:
        save_api_key(secret, profile=config.profile, home=Path.home())
    except (CredentialsFileError, OSError) as exc:
        fail(f"Could not write {config.credentials_path}: {exc}")
    checked = ""
    if count is not None:
        checked = f"; it works on {config.api_url} ({count} SSH key{'' if count == 1 else 's'})"
    typer.echo(
        f"Saved the API key of profile {config.profile!r} in "
        f"{tilde(config.credentials_path)}{checked}."
    )
    if os.environ.get("GPUCLOUD_API_KEY", "").strip():
        output.stderr.print(
            "note: GPUCLOUD_API_KEY is set in this shell and takes precedence over the file."
        )


def _count_keys(api_key: str, api_url: str) -> int:
    """How many SSH keys the API key sees; exits 1, saving nothing, if it is refused."""
    from gpucloud.client import Client, GpuCloudError, TransportError

    try:
        with Client(api_key=api_key, base_url=api_url) as client:
            return len(client.list_ssh_keys())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--api-url'") from None
    except GpuCloudError as exc:
        advice = (
            "; or save it unchecked with --no-verify" if isinstance(exc, TransportError) else ""
        )
        fail(f"{exc.message.rstrip('.')} ({api_url}); nothing was saved{advice}")


def _ask_for_api_key() -> str:
    if sys.stdin.isatty():
        value: str = typer.prompt("API key", hide_input=True, err=True)
        return value
    # Piped: `echo "$KEY" | gpucloud login`, so that the key stays out of the process list.
    return sys.stdin.readline()
