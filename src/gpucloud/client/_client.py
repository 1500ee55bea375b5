"""`Client` and `AsyncClient`: the same calls, sync and async, over httpx.

Each API call is written once, as a `_Call` built by one of the `_…_ssh_key` functions:
its endpoint, its URL, query, body and headers, and how to decode its success. The shared
`_Core` owns the configuration, the retry decision and the translation of answers and
httpx's exceptions into this package's errors. The two clients only add the I/O: send,
sleep, repeat. `ENDPOINTS` names the route behind every public method but `find_ssh_key`
(which is made of the others); a test checks each against the server's OpenAPI document,
so the client has no method the server lacks.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import anyio
import httpx

from gpucloud import __version__
from gpucloud.client._config import resolve_config
from gpucloud.client._exceptions import (
    AuthenticationError,
    GpuCloudError,
    InvalidRequestError,
    NotFoundError,
    TransportError,
    UnexpectedResponseError,
    error_from_response,
    unexpected,
)
from gpucloud.client._models import SSHCertificate, SSHKey, _iso
from gpucloud.client._retry import DEFAULT_MAX_RETRIES, RetryPolicy

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
IDEMPOTENCY_KEY = "Idempotency-Key"
PREFIX = "/gpu-cloud/ssh-keys"
USER_AGENT = (
    f"gpucloud-python/{__version__} (python {platform.python_version()}; httpx {httpx.__version__})"
)
NO_API_KEY = (
    "No API key: pass one (--api-key), set GPUCLOUD_API_KEY, "
    "or run `gpucloud login` to store one in ~/.sesterce/credentials"
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route of the API: method, OpenAPI path template and operationId.

    `idempotent`: sending it twice leaves what sending it once does. True of GET and
    DELETE, and of this API's two PATCHes (makedefault again changes nothing, nor does a
    rename to the name the key already has); not of POST, whose calls are safe to
    repeat only with an Idempotency-Key (see `_Call.safe_to_repeat`).
    """

    method: str
    path: str
    operation_id: str
    idempotent: bool = True


# The route behind each public method of Client and AsyncClient.
ENDPOINTS: Mapping[str, Endpoint] = {
    "create_ssh_key": Endpoint(
        "POST", PREFIX, "GPUCloudSSHKeysController_create", idempotent=False
    ),
    "list_ssh_keys": Endpoint("GET", PREFIX, "GPUCloudSSHKeysController_getUserSSHKeys"),
    "get_ssh_key": Endpoint("GET", PREFIX + "/{id}", "GPUCloudSSHKeysController_getOne"),
    "rename_ssh_key": Endpoint("PATCH", PREFIX + "/{id}", "GPUCloudSSHKeysController_rename"),
    "make_default_ssh_key": Endpoint(
        "PATCH", PREFIX + "/{id}/makedefault", "GPUCloudSSHKeysController_makeDefault"
    ),
    "delete_ssh_key": Endpoint("DELETE", PREFIX + "/{id}", "GPUCloudSSHKeysController_delete"),
    "get_authorized_keys": Endpoint(
        "GET", PREFIX + "/authorized_keys", "GPUCloudSSHKeysController_authorizedKeys"
    ),
    # Safe to repeat: a refused attempt signed nothing, and a second certificate of the
    # same key is as good as the first.
    "certify_ssh_key": Endpoint(
        "POST", PREFIX + "/{id}/certificate", "GPUCloudSSHKeysController_certify"
    ),
}


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    """One API call, ready to send: what to send, and how to read its success."""

    endpoint: Endpoint
    url: str
    decode: Callable[[httpx.Response], T]
    params: dict[str, str] | None = None
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def safe_to_repeat(self) -> bool:
        """Whether a retry may resend it: idempotent, or carrying an Idempotency-Key."""
        return self.endpoint.idempotent or IDEMPOTENCY_KEY in self.headers


# The call builders: one per endpoint, shared by Client and AsyncClient.


class _Unset:
    """The default of an argument that, left out, changes nothing (None means "none")."""

    def __repr__(self) -> str:
        return "unchanged"


_UNSET = _Unset()


def _create_ssh_key(
    name: str, public_key: str, expires_at: dt.datetime | None, idempotency_key: str | None
) -> _Call[SSHKey]:
    _refuse_private_key(public_key)
    body = {"name": name, "publicKey": public_key}
    if expires_at is not None:
        body["expiresAt"] = _wire_time(expires_at)
    return _Call(
        ENDPOINTS["create_ssh_key"],
        PREFIX,
        _decode_key,
        json=body,
        # One key per call, the same on each of its retries: the server answers a
        # repeat with the first answer, so a retried create never makes two keys.
        headers={IDEMPOTENCY_KEY: idempotency_key or str(uuid.uuid4())},
    )


def _list_ssh_keys(name: str | None, fingerprint: str | None) -> _Call[list[SSHKey]]:
    params = {}
    if name is not None:
        params["name"] = name
    if fingerprint is not None:
        params["fingerprint"] = fingerprint
    return _Call(ENDPOINTS["list_ssh_keys"], PREFIX, _decode_keys, params=params or None)


def _get_ssh_key(key_id: str) -> _Call[SSHKey]:
    return _Call(ENDPOINTS["get_ssh_key"], _key_url(key_id), _decode_key)


def _rename_ssh_key(
    key_id: str, name: str | None, expires_at: dt.datetime | _Unset | None
) -> _Call[SSHKey]:
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if not isinstance(expires_at, _Unset):
        body["expiresAt"] = None if expires_at is None else _wire_time(expires_at)
    if not body:
        raise ValueError("give name, expires_at or both")
    return _Call(ENDPOINTS["rename_ssh_key"], _key_url(key_id), _decode_key, json=body)


def _wire_time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(
            f"expires_at {value} has no time zone; give an aware datetime, "
            "e.g. datetime.now(timezone.utc) + timedelta(days=90)"
        )
    return _iso(value)


def _make_default_ssh_key(key_id: str) -> _Call[None]:
    url = _key_url(key_id) + "/makedefault"
    return _Call(ENDPOINTS["make_default_ssh_key"], url, _decode_nothing)


def _delete_ssh_key(key_id: str) -> _Call[None]:
    return _Call(ENDPOINTS["delete_ssh_key"], _key_url(key_id), _decode_nothing)


def _get_authorized_keys(fingerprint: str | None) -> _Call[str]:
    params = None if fingerprint is None else {"fingerprint": fingerprint}
    url = PREFIX + "/authorized_keys"
    return _Call(ENDPOINTS["get_authorized_keys"], url, _decode_text, params=params)


# find_ssh_key: the choices between its calls, shared by Client and AsyncClient.


def _is_fingerprint(ref: str) -> bool:
    return ref.startswith(("SHA256:", "MD5:"))


def _by_fingerprint(ref: str, keys: list[SSHKey]) -> SSHKey:
    """The key of `keys` with fingerprint `ref` (MD5 in any case); raises NotFoundError.

    Filtered on this side too, so that a server that ignores the filter still gives the
    right key.
    """
    wanted = ref if ref.startswith("SHA256:") else ref.lower()
    for key in keys:
        if wanted in (key.fingerprint, (key.fingerprint_md5 or "").lower()):
            return key
    raise NotFoundError(f"You have no SSH key with the fingerprint {ref}")


def _by_name(ref: str, keys: list[SSHKey]) -> SSHKey | None:
    return next((key for key in keys if key.name == ref), None)


def _no_key_named(ref: str) -> NotFoundError:
    return NotFoundError(f'You have no SSH key named "{ref}"')


def _certify_ssh_key(key_id: str, valid_for: str | None) -> _Call[SSHCertificate]:
    url = _key_url(key_id) + "/certificate"
    body = {} if valid_for is None else {"validFor": valid_for}
    return _Call(ENDPOINTS["certify_ssh_key"], url, _decode_certificate, json=body)


def _key_url(key_id: str) -> str:
    if not key_id:
        raise ValueError("key_id must not be empty")
    # Quoted whole, so that an id can never reach another route ("../authorized_keys").
    return f"{PREFIX}/{quote(key_id, safe='')}"


def _refuse_private_key(public_key: str) -> None:
    """Raise InvalidRequestError, without sending anything, if the text holds a private key."""
    from gpucloud.pubkey import PublicKeyError, looks_like_private_key, parse_public_key

    if not looks_like_private_key(public_key):
        return
    message = "This is a private key; upload the contents of the .pub file next to it instead"
    try:
        parse_public_key(public_key)
    except PublicKeyError as exc:
        message = exc.message  # the parser's advice, worded once, there
    raise InvalidRequestError(message, details=[{"field": "publicKey", "message": message}])


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise unexpected(response, what) from None


def _decode_one(response: httpx.Response, model: Callable[[dict[str, Any]], T], what: str) -> T:
    """One JSON object of the API, read by `model` (a `from_wire`)."""
    body = _json(response, what)
    if not isinstance(body, dict):
        raise unexpected(response, what)
    try:
        return model(body)
    except ValueError:
        raise unexpected(response, what) from None


def _decode_key(response: httpx.Response) -> SSHKey:
    return _decode_one(response, SSHKey.from_wire, "an SSH key")


def _decode_keys(response: httpx.Response) -> list[SSHKey]:
    body = _json(response, "a list of SSH keys")
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        raise unexpected(response, "a list of SSH keys")
    try:
        return [SSHKey.from_wire(item) for item in body]
    except ValueError:
        raise unexpected(response, "a list of SSH keys") from None


def _decode_certificate(response: httpx.Response) -> SSHCertificate:
    return _decode_one(response, SSHCertificate.from_wire, "an SSH certificate")


def _decode_nothing(response: httpx.Response) -> None:
    return None


def _decode_text(response: httpx.Response) -> str:
    return response.text


# No answer, and trying again may get one: refused or reset connections, a connect that
# timed out, a kept-alive connection the server closed as the request went out.
RETRY_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


class _Core:
    """What Client and AsyncClient share: configuration, retry decisions, error mapping."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        profile: str | None,
        timeout: float,
        max_retries: int,
    ) -> None:
        config = resolve_config(api_key=api_key, api_url=base_url, profile=profile)
        if config.api_key is None:
            raise AuthenticationError(NO_API_KEY)
        if timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.base_url = _checked_base_url(config.api_url)
        self.timeout = timeout
        self.policy = RetryPolicy(max_retries=max_retries)
        self.options: dict[str, Any] = {
            "base_url": self.base_url,
            "headers": {
                "x-api-key": config.api_key,
                "user-agent": USER_AGENT,
                "accept": "application/json",
            },
            "timeout": httpx.Timeout(timeout),
            # A redirect is answered as an error that names the new address: following
            # it would resend the API key to wherever it points.
            "follow_redirects": False,
        }

    def retry_delay(self, call: _Call[Any], response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending `call` again, or None to settle on `response`."""
        return self.policy.delay(
            attempt=attempt,
            status=response.status_code,
            retry_after=response.headers.get("retry-after"),
            retryable=call.safe_to_repeat,
        )

    def retry_delay_after(
        self, call: _Call[Any], exc: httpx.HTTPError, attempt: int
    ) -> float | None:
        """Seconds to wait before sending `call` again after `exc`, or None to raise it.

        Only failures to reach the server or to get its answer on a connection are
        retried (RETRY_ERRORS), and only for calls safe to repeat; a read or write timeout
        is not (the server may still be working, and the caller chose the timeout).
        """
        if not isinstance(exc, RETRY_ERRORS):
            return None
        return self.policy.delay_after_error(attempt=attempt, retryable=call.safe_to_repeat)

    def outcome(self, call: _Call[T], response: httpx.Response) -> T:
        """The decoded success, or the typed error of the answer."""
        if 200 <= response.status_code < 300:
            return call.decode(response)
        raise error_from_response(response)

    def translate(self, exc: httpx.HTTPError) -> GpuCloudError:
        """This package's error for one of httpx's."""
        if isinstance(exc, httpx.TimeoutException):
            return TransportError(
                f"{self.base_url} did not answer within {self.timeout:g} s; "
                "try again, or raise the timeout"
            )
        if isinstance(exc, httpx.DecodingError):
            return UnexpectedResponseError(f"The answer of {self.base_url} could not be decoded")
        reason = str(exc) or type(exc).__name__
        return TransportError(
            f"Could not connect to {self.base_url} ({reason}); "
            "check that the server is running and that the API URL is right"
        )


def _checked_base_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"The API URL {url!r} must start with http:// or https://")
    return url.rstrip("/")


class Client:
    """A synchronous client of the SSH-keys API.

    Arguments left out are resolved as `resolve_config` does (and says where from): the
    API key from `GPUCLOUD_API_KEY` or the `profile` of `~/.sesterce/credentials`, the URL
    from `GPUCLOUD_API_URL` or `SESTERCE_CLOUD_API_URL`, else `http://127.0.0.1:8000`.
    Raises AuthenticationError when no API key is found, ValueError for a bad argument.

    `timeout` (seconds) bounds each attempt. A call safe to repeat (all but a create
    without its Idempotency-Key, which create always sends) is retried `max_retries`
    times on 429/502/503/504 and when the connection fails (see `_retry`). `transport`
    replaces the network, for tests.
    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        profile: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = _Core(
            api_key=api_key,
            base_url=base_url,
            profile=profile,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._http = httpx.Client(transport=transport, **self._core.options)

    @property
    def base_url(self) -> str:
        """The API's URL, without a trailing slash."""
        return self._core.base_url

    def create_ssh_key(
        self,
        *,
        name: str,
        public_key: str,
        expires_at: dt.datetime | None = None,
        idempotency_key: str | None = None,
    ) -> SSHKey:
        """Register a public key; the first key becomes the default. With `expires_at`
        (an aware datetime, in the future) it stops opening logins then.

        A private key raises InvalidRequestError before anything is sent. A repeat with
        the same `idempotency_key` gets the first answer. Raises ConflictError when the
        key or the name is already registered, InvalidRequestError when either is refused
        (or the expiry is not in the future).
        """
        return self._send(_create_ssh_key(name, public_key, expires_at, idempotency_key))

    def list_ssh_keys(
        self, *, name: str | None = None, fingerprint: str | None = None
    ) -> list[SSHKey]:
        """The keys, oldest first; only the one with this exact name or fingerprint if given."""
        return self._send(_list_ssh_keys(name, fingerprint))

    def get_ssh_key(self, key_id: str) -> SSHKey:
        """One key by its id; raises NotFoundError."""
        return self._send(_get_ssh_key(key_id))

    def rename_ssh_key(
        self,
        key_id: str,
        *,
        name: str | None = None,
        expires_at: dt.datetime | _Unset | None = _UNSET,
    ) -> SSHKey:
        """Give a key a new name and/or expiry (`expires_at=None` removes the expiry;
        left out, it is unchanged); at least one, else ValueError. Raises NotFoundError,
        ConflictError, InvalidRequestError."""
        return self._send(_rename_ssh_key(key_id, name, expires_at))

    def make_default_ssh_key(self, key_id: str) -> None:
        """Make the key the only default one; raises NotFoundError."""
        self._send(_make_default_ssh_key(key_id))

    def delete_ssh_key(self, key_id: str) -> None:
        """Delete a key (the newest remaining one becomes default); raises NotFoundError."""
        self._send(_delete_ssh_key(key_id))

    def get_authorized_keys(self, *, fingerprint: str | None = None) -> str:
        """The keys as an `authorized_keys` file: default first, one line each, expired
        keys left out. With `fingerprint` (`SHA256:…`), only that key's line (or "") —
        a lookup for a login, which records the key's last use."""
        return self._send(_get_authorized_keys(fingerprint))

    def find_ssh_key(self, ref: str) -> SSHKey:
        """The key that `ref` names: a fingerprint (`SHA256:…`, `MD5:…`), else a name, else an id.

        Names are tried before ids: a name is what people type, and the id is asked for
        (one more request) only when no key has that name. Raises NotFoundError.
        """
        if _is_fingerprint(ref):
            return _by_fingerprint(ref, self.list_ssh_keys(fingerprint=ref))
        named = _by_name(ref, self.list_ssh_keys(name=ref))
        if named is not None:
            return named
        try:
            return self.get_ssh_key(ref)
        except NotFoundError:
            raise _no_key_named(ref) from None

    def certify_ssh_key(self, key_id: str, *, valid_for: str | None = None) -> SSHCertificate:
        """A short-lived SSH user certificate of the key, signed by the server's CA.

        `valid_for` is a duration such as "8h" or "30m" (None: the server's default, 8h
        unless configured). Raises NotFoundError; InvalidRequestError for a validity
        out of range, an expired key, or an owner whose name cannot be a principal;
        ServerError (501) when the server has no CA.
        """
        return self._send(_certify_ssh_key(key_id, valid_for))

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: _Call[T]) -> T:
        request = self._http.build_request(
            call.endpoint.method, call.url, params=call.params, json=call.json, headers=call.headers
        )
        attempt = 0
        while True:
            try:
                response = self._http.send(request)
            except httpx.HTTPError as exc:
                delay = self._core.retry_delay_after(call, exc, attempt)
                if delay is None:
                    raise self._core.translate(exc) from exc
            else:
                try:
                    delay = self._core.retry_delay(call, response, attempt)
                    if delay is None:
                        return self._core.outcome(call, response)
                finally:
                    response.close()
            time.sleep(delay)
            attempt += 1


class AsyncClient:
    """An asynchronous client of the SSH-keys API; the same calls as `Client`, awaited.

    Arguments as for `Client`; `transport` may be `httpx.ASGITransport(app=...)` to drive
    an app in process. Use it as an async context manager, or call `aclose()`.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        profile: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = _Core(
            api_key=api_key,
            base_url=base_url,
            profile=profile,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._http = httpx.AsyncClient(transport=transport, **self._core.options)

    @property
    def base_url(self) -> str:
        """The API's URL, without a trailing slash."""
        return self._core.base_url

    async def create_ssh_key(
        self,
        *,
        name: str,
        public_key: str,
        expires_at: dt.datetime | None = None,
        idempotency_key: str | None = None,
    ) -> SSHKey:
        """Register a public key; as `Client.create_ssh_key`."""
        return await self._send(_create_ssh_key(name, public_key, expires_at, idempotency_key))

    async def list_ssh_keys(
        self, *, name: str | None = None, fingerprint: str | None = None
    ) -> list[SSHKey]:
        """The keys, oldest first; as `Client.list_ssh_keys`."""
        return await self._send(_list_ssh_keys(name, fingerprint))

    async def get_ssh_key(self, key_id: str) -> SSHKey:
        """One key by its id; raises NotFoundError."""
        return await self._send(_get_ssh_key(key_id))

    async def rename_ssh_key(
        self,
        key_id: str,
        *,
        name: str | None = None,
        expires_at: dt.datetime | _Unset | None = _UNSET,
    ) -> SSHKey:
        """Give a key a new name and/or expiry; as `Client.rename_ssh_key`."""
        return await self._send(_rename_ssh_key(key_id, name, expires_at))

    async def make_default_ssh_key(self, key_id: str) -> None:
        """Make the key the only default one; raises NotFoundError."""
        await self._send(_make_default_ssh_key(key_id))

    async def delete_ssh_key(self, key_id: str) -> None:
        """Delete a key; as `Client.delete_ssh_key`."""
        await self._send(_delete_ssh_key(key_id))

    async def get_authorized_keys(self, *, fingerprint: str | None = None) -> str:
        """The keys as an `authorized_keys` file; as `Client.get_authorized_keys`."""
        return await self._send(_get_authorized_keys(fingerprint))

    async def find_ssh_key(self, ref: str) -> SSHKey:
        """The key that `ref` names; as `Client.find_ssh_key`."""
        if _is_fingerprint(ref):
            return _by_fingerprint(ref, await self.list_ssh_keys(fingerprint=ref))
        named = _by_name(ref, await self.list_ssh_keys(name=ref))
        if named is not None:
            return named
        try:
            return await self.get_ssh_key(ref)
        except NotFoundError:
            raise _no_key_named(ref) from None

    async def certify_ssh_key(self, key_id: str, *, valid_for: str | None = None) -> SSHCertificate:
        """A short-lived SSH user certificate of the key; as `Client.certify_ssh_key`."""
        return await self._send(_certify_ssh_key(key_id, valid_for))

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: _Call[T]) -> T:
        request = self._http.build_request(
            call.endpoint.method, call.url, params=call.params, json=call.json, headers=call.headers
        )
        attempt = 0
        while True:
            try:
                response = await self._http.send(request)
            except httpx.HTTPError as exc:
                delay = self._core.retry_delay_after(call, exc, attempt)
                if delay is None:
                    raise self._core.translate(exc) from exc
            else:
                try:
                    delay = self._core.retry_delay(call, response, attempt)
                    if delay is None:
                        return self._core.outcome(call, response)
                finally:
                    await response.aclose()
            await anyio.sleep(delay)
            attempt += 1
