"""A test server: a `gpucloud serve --ephemeral` process, and what one test sees of it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from gpucloud.harness import TOKEN_HEADER

if TYPE_CHECKING:
    from gpucloud.client import Client

# The settings a test server gets unless the tests' own say otherwise: logs a person reads
# in a failing test's report.
DEFAULT_ENV = {"GPUCLOUD_LOG_FORMAT": "text"}
_PORT_ATTEMPTS = 3


class GpuCloudServerError(RuntimeError):
    """The test server could not be started, or refused a control request."""


class EphemeralServer:
    """One `gpucloud serve --ephemeral` process on a free port of 127.0.0.1.

    Its environment is this process's without any `GPUCLOUD_*` variable (a developer's
    own API key or database must not leak into tests), plus DEFAULT_ENV and `env`.
    """

    def __init__(self, directory: Path, env: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self.log_path = directory / "server.log"
        self.token_file = directory / "control-token"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")},
            **DEFAULT_ENV,
            **(env or {}),
        }
        self.url = ""
        self.start_seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._control: httpx.Client | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers; raises GpuCloudServerError."""
        began = time.monotonic()
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            if self._try_start(port, began + timeout):
                self.url = f"http://127.0.0.1:{port}"
                break
        else:
            raise GpuCloudServerError(
                f"the gpucloud test server found no free port; its log:\n{self.log_tail()}"
            )
        token = self.token_file.read_text().strip()
        self._control = httpx.Client(
            base_url=self.url,
            headers={TOKEN_HEADER: token},
            timeout=30.0,
            # An idle keep-alive connection the server closed is opened again.
            transport=httpx.HTTPTransport(retries=1),
        )
        self.start_seconds = time.monotonic() - began

    def _try_start(self, port: int, deadline: float) -> bool:
        """Whether the server answers on `port`; False when the port was taken."""
        command = [
            *(sys.executable, "-m", "gpucloud", "serve", "--ephemeral"),
            *("--port", str(port), "--control-token-file", str(self.token_file)),
        ]
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self._process = subprocess.Popen(
                command,
                env=self.env,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                # stdout has only the API key that --ephemeral prints: no log gets a secret.
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        url = f"http://127.0.0.1:{port}/healthz"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                if "address already in use" in self.log_tail().lower():
                    return False
                raise GpuCloudServerError(
                    f"the gpucloud test server exited with status {self._process.returncode}; "
                    f"its log:\n{self.log_tail()}"
                )
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.stop()
        raise GpuCloudServerError(
            f"the gpucloud test server did not answer within the time allowed; its log:\n"
            f"{self.log_tail()}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM: it removes its database), killing it if it hangs."""
        if self._control is not None:
            self._control.close()
            self._control = None
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def control(self, path: str, body: Mapping[str, Any] | None = None) -> httpx.Response:
        """POST a control request; raises ValueError for a 400 (its message says why),
        GpuCloudServerError for any other refusal or a server that does not answer."""
        if self._control is None:
            raise GpuCloudServerError("the gpucloud test server is not running")
        try:
            response = self._control.post(f"/_gpucloud/{path}", json=body)
        except httpx.HTTPError as exc:
            raise GpuCloudServerError(
                f"the gpucloud test server did not answer {path} ({exc}); its log:\n"
                f"{self.log_tail()}"
            ) from None
        if response.status_code == 400:
            raise ValueError(response.json()["message"])
        if response.is_error:
            raise GpuCloudServerError(
                f"the gpucloud test server answered {response.status_code} to {path}: "
                f"{response.text}"
            )
        return response

    def log_size(self) -> int:
        """How many bytes the log has now."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        """The log from byte `offset` on."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, size: int = 4000) -> str:
        """The end of the log."""
        return self.log_since(max(0, self.log_size() - size))


class GpuCloudServer:
    """What the `gpucloud_server` fixture gives a test: a real gpucloud server, wiped
    before the test began.

    `url` is its base URL; `api_key` an `ssh-keys` API key of a new owner, made for this
    test (on first use). Every method raises ValueError when the server refuses its
    arguments, with the server's message.
    """

    def __init__(self, server: EphemeralServer) -> None:
        self._server = server
        self._api_key: str | None = None

    @property
    def url(self) -> str:
        """The server's base URL, e.g. http://127.0.0.1:41234 (no trailing slash)."""
        return self._server.url

    @property
    def api_key(self) -> str:
        """An `ssh-keys` API key of a new owner, the same for the whole test."""
        if self._api_key is None:
            self._api_key = self.create_api_key()
        return self._api_key

    def create_api_key(
        self, owner: str | None = None, scopes: Sequence[str] = ("ssh-keys",)
    ) -> str:
        """A new API key secret of `owner` (created if new; a new owner of its own when
        None), with these scopes: `ssh-keys`, `authorized-keys` (SPEC 8)."""
        if isinstance(scopes, str):
            raise TypeError(f"scopes is a sequence of scope names, e.g. ({scopes!r},)")
        answer = self._server.control("api-keys", {"owner": owner, "scopes": list(scopes)})
        secret: str = answer.json()["apiKey"]
        return secret

    def inject_fault(
        self,
        operation_id: str,
        status: int | None = 503,
        times: int = 1,
        delay_s: float = 0.0,
        *,
        retry_after: int = 1,
    ) -> None:
        """The next `times` calls of the operation `operation_id` (an operationId of
        /openapi.json, e.g. `GPUCloudSSHKeysController_create`) wait `delay_s` seconds,
        then answer `status` in the API's error shape, with `Retry-After: retry_after`
        for a 429 or a 503 — or, when `status` is None, are served as usual after the
        wait. A faulted call changes nothing. Faults for one operation serve in order."""
        self._server.control(
            "faults",
            {
                "operationId": operation_id,
                "status": status,
                "times": times,
                "delaySeconds": delay_s,
                "retryAfter": retry_after,
            },
        )

    def reset(self) -> None:
        """Wipe the server, as before each test: every owner, key and waiting fault.
        `api_key` is a new one afterwards."""
        self._server.control("reset")
        self._api_key = None

    def client(self, *, api_key: str | None = None) -> Client:
        """A `gpucloud.client.Client` of this server, with `api_key` (by default this
        test's `api_key`); use it in a `with` block, or close it."""
        from gpucloud.client import Client

        return Client(base_url=self.url, api_key=api_key or self.api_key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
