"""Pytest plugin: the run fails if an API-key secret or a private-key line leaks.

SPEC 2: "The secret never appears in a log line, an error body, a metric label or the
database"; SPEC 4: a private key is "not stored, not logged, not echoed back". Each test
checks this for what it does; this plugin checks it for everything the whole suite does.

What it records, from session start (pytest_configure) to session end:

- **Secrets.** Every `gck_…` secret that exists during the run: each one the code under
  test generates in this process (`gpucloud.api_keys.secrets.generate` is wrapped, which
  covers `make_api_key` and every in-process `api_keys.create`), each one printed by a
  subprocess (`gpucloud api-keys create|rotate` run through `subprocess.run`), and each
  one a test presents to a server (`x-api-key` and any other header or URL of a request
  sent by httpx, including well-formed keys that were never issued: a server must not
  log a guessed key either).
- **Private-key lines.** The base64 body lines of every private key made by
  `tests.support.keygen.generate` (wrapped), read when the key is made, and of every
  SSH CA key file (and prepared next key) made or read in the test process
  (`gpucloud.ca.keys.load` is wrapped) or made by a `gpucloud ca` command the tests run
  (its key files are read when it ends: `ca rotate` writes a key no test reads). Lines shorter than 40 characters (the tail of a block) and lines that also
  occur in the key's own public line (public material) are left out, so that a match
  means a real leak.

What it searches:

- every log record of the test process (a root logging handler; the `gpucloud` loggers
  are opened down to DEBUG, so that a secret logged at any level is found), and every
  access-log line of the app in process (`gpucloud.ops.logs.access_log`, which bypasses
  `logging` and is off until a server configures it, is turned on into the audit),
- the log file of every `ServerProcess` (read at session end),
- every response a real server or the in-process app sends to httpx (its transports are
  wrapped, so the `client` fixture needs no change): error bodies (4xx, 5xx) for secrets
  and private-key lines, success bodies for secrets (a success body legitimately holds
  public keys, never a secret — but for the answer of a test server's control operation
  that issues an API key, whose secret is recorded instead, as a CLI's stdout is), and
  every body for private-key lines (a certificate or a trust list is public material),
- the stderr of every `gpucloud` subprocess (its error messages), and its stdout for
  private-key lines (`ca show`, `ssh-keys certify -o -` print public keys only),
- every SQLite database a test made from the template (and its WAL), read whole at
  session end: the tables, and the free pages a deleted row leaves; the same
  statements write PostgreSQL.

At session end it reports what it checked, and, for each leak, where the secret came
from and where it was found (secrets shown only by their prefix); any leak sets the exit
status to "tests failed". Enable it from the top conftest:
`pytest_plugins = [..., "tests.support.secret_audit"]`.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import subprocess
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

SECRET = re.compile(r"gck_[A-Za-z0-9_-]{43}")
# Private-key lines are base64 (standard alphabet); 40 characters is long enough that a
# match cannot be chance, and short enough to cover the body lines of every format.
MIN_LINE = 40
_BASE64_LINE = re.compile(rf"[A-Za-z0-9+/=]{{{MIN_LINE},}}")
_BASE64_RUN = re.compile(rf"[A-Za-z0-9+/=]{{{MIN_LINE},}}")
# Bodies are kept up to this size for the scan (the Swagger UI bundle is 1.7 MB).
MAX_BODY_BYTES = 4 * 1024 * 1024
# Loggers of the test's own HTTP client: they log the URLs a test sends, not the server's.
_CLIENT_SIDE_LOGGERS = ("httpx", "httpcore")
# Attributes every LogRecord has; anything else came from `extra=`.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def mask(value: str) -> str:
    """A secret or key line shortened so that a report never repeats it whole."""
    return value[:10] + "…"


@dataclass(frozen=True, slots=True)
class Leak:
    """A recorded secret or private-key line found where it must not be."""

    kind: str
    value: str
    origin: str
    found_in: str

    def describe(self) -> str:
        return f"{self.kind} {mask(self.value)} ({self.origin}) found in {self.found_in}"


class SecretAudit:
    """What the run issued, what it searched, and the leaks found between the two.

    Searched text is reduced at once to the secret-shaped tokens and long base64 runs
    it holds, so nothing large is kept, and a secret recorded after the text that
    leaked it (for instance a CLI's stdout read after the server logged it) is still
    found at the end.
    """

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.private_lines: dict[str, str] = {}
        self.current_test = "session set-up"
        self.scanned: Counter[str] = Counter()
        self._lines_by_prefix: dict[str, list[str]] = {}
        self._seen_tokens: dict[str, str] = {}
        self._seen_runs: dict[str, str] = {}
        self._server_logs: dict[Path, str] = {}
        self._databases: dict[Path, str] = {}
        self._lock = threading.Lock()

    # What exists

    def record_secret(self, secret: str, origin: str) -> None:
        """Remember a secret (the first origin given is kept)."""
        with self._lock:
            self.secrets.setdefault(secret, f"{origin}, in {self.current_test}")

    def record_secrets_in(self, text: str, origin: str) -> None:
        """Remember every secret-shaped token in `text`."""
        for token in SECRET.findall(text):
            self.record_secret(token, origin)

    def record_private_key(self, private_text: str, public_text: str, origin: str) -> None:
        """Remember the body lines of a private key (see the module's docstring)."""
        with self._lock:
            public = _public_bytes(public_text)
            for raw in private_text.splitlines():
                line = raw.strip()
                if not _BASE64_LINE.fullmatch(line) or line in public_text:
                    continue
                if _only_public(line, public):
                    continue
                if line not in self.private_lines:
                    self.private_lines[line] = f"{origin}, in {self.current_test}"
                    self._lines_by_prefix.setdefault(line[:MIN_LINE], []).append(line)

    def record_server_log(self, path: Path) -> None:
        """Remember a server's log file, to search at the end."""
        with self._lock:
            self._server_logs.setdefault(path, self.current_test)

    def record_database(self, path: Path) -> None:
        """Remember a test's SQLite database file, to search at the end."""
        with self._lock:
            self._databases.setdefault(path, self.current_test)

    # Where it must not be

    def scan(
        self,
        text: str,
        source: str,
        *,
        kind: str,
        private_lines: bool = True,
        secrets: bool = True,
    ) -> None:
        """Search `text` (from `source`, counted under `kind`) at the end of the run."""
        tokens = SECRET.findall(text) if secrets else []
        runs = _BASE64_RUN.findall(text) if private_lines else []
        with self._lock:
            self.scanned[kind] += 1
            where = f"{source} (during {self.current_test})"
            for token in tokens:
                self._seen_tokens.setdefault(token, where)
            for run in runs:
                self._seen_runs.setdefault(run, where)

    def scan_server_logs(self) -> None:
        """Search every server log file recorded so far, line by line."""
        with self._lock:
            logs = list(self._server_logs.items())
            self._server_logs.clear()
        for path, test in logs:
            if not path.exists():
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                source = f"server log {path}:{number} (server of {test})"
                self.scan(line, source, kind="server log lines")
            self.scanned["server log files"] += 1

    def scan_databases(self) -> None:
        """Search every SQLite database recorded so far, and its WAL, byte for byte."""
        with self._lock:
            files = list(self._databases.items())
            self._databases.clear()
        for path, test in files:
            for part in (path, path.with_name(path.name + "-wal")):
                if not part.exists():
                    continue
                text = part.read_bytes().decode("latin-1")
                self.scan(text, f"database file {part} (of {test})", kind="database files")

    def leaks(self) -> list[Leak]:
        """Every recorded secret or private-key line seen in searched text."""
        found = [
            Leak("API-key secret", token, self.secrets[token], where)
            for token, where in self._seen_tokens.items()
            if token in self.secrets
        ]
        for run, where in self._seen_runs.items():
            for start in range(len(run) - MIN_LINE + 1):
                for line in self._lines_by_prefix.get(run[start : start + MIN_LINE], ()):
                    if run.startswith(line, start):
                        found.append(
                            Leak("private-key line", line, self.private_lines[line], where)
                        )
        return found

    def summary(self) -> str:
        """One line: what was recorded and how much was searched."""
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.scanned.items()))
        return (
            f"{len(self.secrets)} API-key secrets and {len(self.private_lines)} private-key "
            f"lines checked against {counts or 'nothing'}"
        )


def _public_bytes(public_text: str) -> list[bytes]:
    """The decoded blobs of the public key lines in `public_text`."""
    blobs = []
    for token in public_text.split():
        if len(token) >= MIN_LINE and len(token) % 4 == 0:
            with contextlib.suppress(ValueError):
                blobs.append(base64.b64decode(token, validate=True))
    return blobs


def _only_public(line: str, public: list[bytes]) -> bool:
    """Whether the private-key line's bytes are public material: all but at most 4 of
    them (at its ends) lie in a public key blob."""
    if len(line) % 4:
        return False
    try:
        data = base64.b64decode(line, validate=True)
    except ValueError:
        return False
    for head in range(5):
        for tail in range(5 - head):
            middle = data[head : len(data) - tail]
            if any(middle in blob for blob in public):
                return True
    return False


class _LogHandler(logging.Handler):
    """Hands every log record of the test process to the audit."""

    def __init__(self, audit: SecretAudit) -> None:
        super().__init__(logging.NOTSET)
        self.audit = audit

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in _CLIENT_SIDE_LOGGERS:
            return
        try:
            parts = [record.getMessage()]
        except Exception:  # a malformed record: search its raw parts instead
            parts = [str(record.msg), repr(record.args)]
        parts += [
            f"{key}={value!r}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        ]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
        self.audit.scan("\n".join(parts), f"log record of {record.name}", kind="log records")


def _note_request(audit: SecretAudit, request: httpx.Request) -> None:
    origin = f"sent in a request to {request.url.host}"
    audit.record_secrets_in(str(request.url), origin)
    for _, value in request.headers.multi_items():
        audit.record_secrets_in(value, origin)


# The one success body that carries a secret: a test server's control operation that
# issues an API key (gpucloud.harness), as `gpucloud api-keys create` prints one.
_ISSUES_SECRETS = ("POST", "/_gpucloud/api-keys", 201)


def _scan_body(audit: SecretAudit, request: httpx.Request, status: int, body: bytes) -> None:
    text = body.decode("utf-8", errors="replace")
    if (request.method, request.url.path, status) == _ISSUES_SECRETS:
        audit.record_secrets_in(text, "issued by a test server's POST /_gpucloud/api-keys")
        return
    source = f"{status} response body of {request.method} {request.url.path}"
    error = status >= 400
    kind = "error bodies" if error else "success bodies"
    audit.scan(text, source, kind=kind)


class _Collected:
    """A response body being read, kept (up to MAX_BODY_BYTES) and searched once read."""

    def __init__(self, audit: SecretAudit, request: httpx.Request, status: int) -> None:
        self.audit, self.request, self.status = audit, request, status
        self.parts: list[bytes] = []
        self.size = 0
        self.done = False

    def add(self, chunk: bytes) -> None:
        if self.size < MAX_BODY_BYTES:
            self.parts.append(chunk[: MAX_BODY_BYTES - self.size])
            self.size += len(chunk)

    def finish(self) -> None:
        if not self.done:
            self.done = True
            _scan_body(self.audit, self.request, self.status, b"".join(self.parts))


class _AsyncTee(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, collected: _Collected) -> None:
        self.inner, self.collected = inner, collected

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.collected.add(chunk)
            yield chunk
        self.collected.finish()

    async def aclose(self) -> None:
        self.collected.finish()
        await self.inner.aclose()


class _SyncTee(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, collected: _Collected) -> None:
        self.inner, self.collected = inner, collected

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.collected.add(chunk)
            yield chunk
        self.collected.finish()

    def close(self) -> None:
        self.collected.finish()
        self.inner.close()


def _command_text(args: Any) -> str:
    if isinstance(args, (str, bytes)):
        return args if isinstance(args, str) else args.decode(errors="replace")
    return " ".join(str(part) for part in args)


def _as_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else ""


class _Patches:
    """Attributes replaced for the session, and put back at its end."""

    def __init__(self) -> None:
        self._undo: list[tuple[object, str, object]] = []

    def replace(self, owner: object, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        self._undo.append((owner, name, original))
        setattr(owner, name, make(original))

    def undo(self) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)


def _install(audit: SecretAudit, patches: _Patches) -> None:
    from gpucloud.api_keys import secrets as api_key_secrets
    from gpucloud.ca import keys as ca_keys
    from tests.support import keygen
    from tests.support.databases import SQLiteTemplate
    from tests.support.server import GPUCLOUD, ServerProcess

    def wrap_generate_secret(original: Callable[[], str]) -> Callable[[], str]:
        def generate() -> str:
            secret = original()
            audit.record_secret(secret, "generated in the test process")
            return secret

        return generate

    def wrap_keygen(original: Callable[..., keygen.GeneratedKey]) -> Callable[..., Any]:
        def generate(*args: Any, **kwargs: Any) -> keygen.GeneratedKey:
            key = original(*args, **kwargs)
            if key.private_path is not None:
                audit.record_private_key(
                    key.private_text, key.public_text, f"private key {key.private_path}"
                )
            return key

        return generate

    def wrap_ca_load(original: Callable[..., Any]) -> Callable[..., Any]:
        # `init` and `rotate` end by calling `load`, so every CA key made or read in
        # the test process passes here.
        def load(key_file: Path) -> Any:
            loaded = original(key_file)
            for path in (key_file, ca_keys.next_file(key_file)):
                if path.exists():
                    audit.record_private_key(
                        path.read_text(), loaded.trust_list(), f"SSH CA key {path}"
                    )
            return loaded

        return load

    def record_ca_keys_of(args: Any, env: Any) -> None:
        # After `gpucloud ca …`: the key files it names (--key-file, else the variable).
        parts = [str(part) for part in args] if isinstance(args, (list, tuple)) else []
        if len(parts) < 2 or Path(parts[0]).name != Path(GPUCLOUD).name or parts[1] != "ca":
            return
        named = parts[parts.index("--key-file") + 1] if "--key-file" in parts[:-1] else None
        named = named or (env or {}).get("GPUCLOUD_SSH_CA_KEY_FILE")
        if named:
            with contextlib.suppress(Exception):  # no usable key: nothing secret to record
                ca_keys.load(Path(named))

    def wrap_copy_to(original: Callable[..., str]) -> Callable[..., str]:
        def copy_to(self: SQLiteTemplate, directory: Path) -> str:
            url = original(self, directory)
            audit.record_database(Path(url.removeprefix("sqlite:///")))
            return url

        return copy_to

    def wrap_server_start(original: Callable[..., ServerProcess]) -> Callable[..., Any]:
        def start(self: ServerProcess, *args: Any, **kwargs: Any) -> ServerProcess:
            audit.record_server_log(self.log_path)
            return original(self, *args, **kwargs)

        return start

    def wrap_run(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(*popenargs: Any, **kwargs: Any) -> Any:
            args = popenargs[0] if popenargs else kwargs.get("args", "")
            command = _command_text(args)
            given = [command, _as_text(kwargs.get("input"))]
            given += [str(value) for value in (kwargs.get("env") or {}).values()]
            for text in given:
                audit.record_secrets_in(text, "given to a subprocess")
            try:
                result = original(*popenargs, **kwargs)
            except subprocess.SubprocessError as exc:  # check=True or a timeout: still read
                note(command, getattr(exc, "stdout", None), getattr(exc, "stderr", None))
                raise
            note(command, result.stdout, result.stderr)
            record_ca_keys_of(args, kwargs.get("env"))
            return result

        return run

    def note(command: str, stdout: object, stderr: object) -> None:
        name = command.split(" ", 1)[0]
        audit.record_secrets_in(_as_text(stdout), f"printed by {name}")
        if Path(name).name == Path(GPUCLOUD).name:
            audit.scan(_as_text(stderr), f"stderr of `{command}`", kind="CLI stderr")
            # Its stdout may hold a secret it issued (`api-keys create`), never a private key.
            audit.scan(_as_text(stdout), f"stdout of `{command}`", kind="CLI stdout", secrets=False)

    def wrap_async_transport(original: Callable[..., Any]) -> Callable[..., Any]:
        async def handle_async_request(self: Any, request: httpx.Request) -> httpx.Response:
            _note_request(audit, request)
            response: httpx.Response = await original(self, request)
            collected = _Collected(audit, request, response.status_code)
            response.stream = _AsyncTee(response.stream, collected)  # type: ignore[arg-type]
            return response

        return handle_async_request

    def wrap_sync_transport(original: Callable[..., Any]) -> Callable[..., Any]:
        def handle_request(self: Any, request: httpx.Request) -> httpx.Response:
            _note_request(audit, request)
            response: httpx.Response = original(self, request)
            collected = _Collected(audit, request, response.status_code)
            response.stream = _SyncTee(response.stream, collected)  # type: ignore[arg-type]
            return response

        return handle_request

    patches.replace(api_key_secrets, "generate", wrap_generate_secret)
    patches.replace(keygen, "generate", wrap_keygen)
    patches.replace(ca_keys, "load", wrap_ca_load)
    patches.replace(ServerProcess, "start", wrap_server_start)
    patches.replace(SQLiteTemplate, "copy_to", wrap_copy_to)
    patches.replace(subprocess, "run", wrap_run)
    # Real servers and the in-process app; MockTransport bodies are the tests' own.
    patches.replace(httpx.ASGITransport, "handle_async_request", wrap_async_transport)
    patches.replace(httpx.AsyncHTTPTransport, "handle_async_request", wrap_async_transport)
    patches.replace(httpx.HTTPTransport, "handle_request", wrap_sync_transport)


_AUDIT = pytest.StashKey[SecretAudit]()
_STATE = pytest.StashKey[tuple[_Patches, _LogHandler, list[Leak]]]()


def active(config: pytest.Config) -> SecretAudit | None:
    """The session's audit, or None when the plugin is not enabled."""
    return config.stash.get(_AUDIT, None)


class _AccessLogStream:
    """Where the in-process app's access log writes: straight into the audit."""

    def __init__(self, audit: SecretAudit) -> None:
        self.audit = audit

    def write(self, data: bytes) -> int:
        # The access log writes the lines of one turn of the event loop at once.
        for line in bytes(data).decode("utf-8", "replace").splitlines():
            self.audit.scan(line, "access log line of the app in process", kind="access log lines")
        return len(data)

    def flush(self) -> None:
        pass


def _attach(handler: _LogHandler) -> None:
    # Re-attached before every test: `gpucloud.ops.logs.configure` replaces the root
    # logger's handlers and the access log's stream, and a test may call it in process.
    from gpucloud.ops.logs import access_log

    # The access log is written without `logging` (for speed) and is off until the server
    # configures it; in process it is turned on here, and written into the audit.
    stream: Any = _AccessLogStream(handler.audit)
    access_log.setup(enabled=True, json_lines=True, stream=stream)
    root = logging.getLogger()
    if handler not in root.handlers:
        root.addHandler(handler)
    gpucloud_logger = logging.getLogger("gpucloud")
    if gpucloud_logger.level == logging.NOTSET or gpucloud_logger.level > logging.DEBUG:
        gpucloud_logger.setLevel(logging.DEBUG)


def pytest_configure(config: pytest.Config) -> None:
    audit = SecretAudit()
    patches = _Patches()
    _install(audit, patches)
    handler = _LogHandler(audit)
    _attach(handler)
    config.stash[_AUDIT] = audit
    config.stash[_STATE] = (patches, handler, [])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    audit = item.config.stash[_AUDIT]
    _attach(item.config.stash[_STATE][1])
    audit.current_test = item.nodeid
    try:
        return (yield)
    finally:
        audit.current_test = "between tests"


def pytest_sessionfinish(session: pytest.Session) -> None:
    audit = session.config.stash[_AUDIT]
    audit.current_test = "session end"
    audit.scan_server_logs()
    audit.scan_databases()
    leaks = session.config.stash[_STATE][2]
    leaks[:] = audit.leaks()
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    audit = config.stash.get(_AUDIT, None)
    if audit is None or config.option.collectonly:
        return
    leaks = config.stash[_STATE][2]
    if not leaks:
        terminalreporter.write_line(f"secret audit: no leak; {audit.summary()}", green=True)
        return
    terminalreporter.section("secret audit: LEAKS", sep="=", red=True, bold=True)
    for leak in leaks:
        terminalreporter.write_line(leak.describe(), red=True)
    terminalreporter.write_line(f"{len(leaks)} leak(s); {audit.summary()}", red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    patches, handler, _ = state
    patches.undo()
    with contextlib.suppress(ValueError):
        logging.getLogger().removeHandler(handler)
