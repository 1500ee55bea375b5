"""The Python client of the gpucloud SSH-keys API.

    from gpucloud.client import Client

    with Client() as client:  # GPUCLOUD_API_KEY, or `gpucloud login`'s credentials
        key = client.create_ssh_key(name="laptop", public_key=open("id_ed25519.pub").read())
        client.make_default_ssh_key(key.id)
        for key in client.list_ssh_keys():
            print(key.name, key.fingerprint, key.is_default)

`AsyncClient` has the same methods, awaited; `client.find_ssh_key(ref)` finds a key by
name, id or fingerprint. `resolve_config()` says which API key and URL a client would use
and where each came from (argument, environment, `~/.sesterce/credentials`), and
`save_api_key()` stores a key there, as `gpucloud login` does. Every error is a
`GpuCloudError`; see `gpucloud.client._exceptions` for the tree. This package imports
nothing of the server.
"""

from gpucloud.client._client import DEFAULT_TIMEOUT, AsyncClient, Client
from gpucloud.client._config import (
    DEFAULT_API_URL,
    ConfigOrigin,
    CredentialsFileError,
    ResolvedConfig,
    resolve_config,
    save_api_key,
)
from gpucloud.client._exceptions import (
    AuthenticationError,
    ConflictError,
    GpuCloudError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
)
from gpucloud.client._models import SSHCertificate, SSHKey

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConfigOrigin",
    "ConflictError",
    "CredentialsFileError",
    "GpuCloudError",
    "InvalidRequestError",
    "NotFoundError",
    "RateLimitedError",
    "ResolvedConfig",
    "SSHCertificate",
    "SSHKey",
    "ServerError",
    "TransportError",
    "UnexpectedResponseError",
    "resolve_config",
    "save_api_key",
]
