"""`gpucloud-authorized-keys [--config FILE] USER [FINGERPRINT]`: the command sshd runs.

sshd runs it at every login (`AuthorizedKeysCommand … %u %f`, as its own unprivileged
`AuthorizedKeysCommandUser`) and reads its stdout as an authorized_keys file. It asks
the gpucloud API for the keys that may log in as the local USER — with FINGERPRINT
(sshd's `%f`), only the line of that key — and prints them. docs/instances.md tells how
to set an instance up; SPEC 10 is the contract.

Small and paranoid, because it stands between the network and a login:

- the standard library only, and nothing else of gpucloud, so that it starts fast and
  this one file can be copied onto an instance alone (`python3 -I -S authorized_keys.py`);
- every argument is hostile (sshd does not quote tokens): a USER that is not a plain
  user name, or a FINGERPRINT that is not `SHA256:` and 43 base64 characters, gets no
  lines, and nothing is read or asked for it;
- one deadline for the whole lookup (`[server] timeout`) that no slow server, resolver
  or network can stretch, and an alarm that ends the process if anything local hangs;
- stdout carries nothing but complete authorized_keys lines, written at the very end in
  one go; every line the server sends is checked before it is printed; every message
  goes to stderr and to syslog (LOG_AUTH), and the API key to neither;
- the cache is written atomically and read only when it is whole and ours;
- any doubt means no lines.

Exit status: 0 when the lookup was answered (by the API, or by a fresh enough cache),
with or without lines; 1 when it could not be (the API unreachable and no usable cache,
or an unexpected error); 2 for a usage or configuration error. Lines are printed only
with status 0 (sshd ignores what a failing command prints).
"""

from __future__ import annotations

import _thread
import binascii
import configparser
import os
import re
import signal
import socket
import stat
import sys
import syslog
import time

try:  # CPython's own SHA-256: loading OpenSSL for hashlib costs more than a lookup's work
    from _sha256 import sha256  # type: ignore[import-not-found]  # no stubs
except ImportError:  # pragma: no cover — other interpreters, Python 3.12+
    from hashlib import sha256

PROG = "gpucloud-authorized-keys"
USAGE = f"usage: {PROG} [--config FILE] USER [FINGERPRINT]"
DEFAULT_CONFIG = "/etc/gpucloud/authorized-keys.conf"
DEFAULT_CACHE_DIRECTORY = "/var/cache/gpucloud"
DEFAULT_TIMEOUT_S = 3.0
MAX_TIMEOUT_S = 30.0
# docs/decisions.md explains this default: fail open for an hour, then closed.
DEFAULT_MAX_STALE_S = 3600.0
ENDPOINT = "/gpu-cloud/ssh-keys/authorized_keys"

# The key types the API accepts (SPEC 4); a test keeps this equal to gpucloud.pubkey's,
# which this file cannot import (it pulls in `cryptography`).
ACCEPTED_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)

# How many fields (SSH strings) the public key blob of each type has, its type included.
_FIELDS = dict(zip(ACCEPTED_KEY_TYPES, (2, 3, 3, 3, 3, 3, 4), strict=True))
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_USER_CHARS = frozenset(_ALNUM + "_.-")
_BASE64_CHARS = frozenset(_ALNUM + "+/")
_BASE64URL_CHARS = frozenset(_ALNUM + "-_")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
# Patterns as text: `re` compiles each the first time it is used, and most runs use few.
# sshd's expiry-time option as the API writes it (SPEC 9), and nothing else in front.
_EXPIRY_TIME = r'expiry-time="(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z" '
_CONTROL = r"[\x00-\x1f\x7f]"
_ETAG = r'(?:W/)?"[\x21\x23-\x7e]{0,200}"'
_DURATION = r"(\d{1,9}(?:\.\d{1,6})?)(ms|s|m|h|d)?"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_URL = (
    r"(?P<scheme>https?)://(?P<host>[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<path>(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)*)"
)
_API_KEY_SHAPE = r"gck_[A-Za-z0-9_-]{8,}"
_JSON_MESSAGE = r'"message"\s*:\s*"([^"\\]{1,200})"'
_STATUS_LINE = rb"HTTP/1\.[01] (\d{3})(?: [\x20-\x7e\x80-\xff]*)?"
_HEADER = rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}):[ \t]*([\x20-\x7e\x80-\xff]*?)[ \t]*"

MAX_CONFIG_BYTES = 64 * 1024
MAX_CREDENTIAL_BYTES = 4096
# An owner has at most 1000 keys of at most 16 KiB each (SPEC 4).
MAX_BODY_BYTES = 16 * 1024 * 1024 + 64 * 1024
MAX_LINE_CHARS = 16 * 1024 + 64
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
# A cache file whose time is further in the future than this is not trusted.
MAX_CLOCK_SKEW_S = 300.0
CACHE_MAGIC = b"gpucloud-authorized-keys cache 1"
# Seconds past the lookup's deadline after which the process ends itself, whatever hangs.
ALARM_GRACE_S = 2


class UsageError(Exception):
    """The arguments are not what sshd would pass: no lines, status 2."""


class ConfigError(Exception):
    """The configuration has mistakes: one message each, no lines, status 2."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


class Unreachable(Exception):
    """No usable answer from the API (connection, timeout, 5xx, garbage)."""


# Messages: stderr and syslog, never stdout, never a secret.


def say(message: str, priority: int = syslog.LOG_WARNING) -> None:
    """One diagnostic line on stderr and in syslog; whatever looks like an API key is cut."""
    if "gck_" in message:
        message = re.sub(_API_KEY_SHAPE, "gck_…", message)
    if re.search(_CONTROL, message):  # one message, one line: no forged log lines
        message = re.sub(_CONTROL, lambda match: f"\\x{ord(match.group()):02x}", message)
    # try/except rather than contextlib.suppress: contextlib would be one more import.
    try:  # noqa: SIM105
        os.write(2, f"{PROG}: {message}\n".encode("utf-8", "backslashreplace"))
    except OSError:
        pass
    try:  # noqa: SIM105
        syslog.syslog(priority, message)
    except Exception:  # noqa: S110 — syslog is best effort; stderr already has the line
        pass


def shown(value: str, limit: int = 64, *, spaces: bool = False) -> str:
    """`value` safe to log: printable ASCII, the rest escaped, at most `limit` characters."""
    out = []
    for char in value[:limit]:
        code = ord(char)
        printable = (0x21 <= code < 0x7F and char not in '"\\') or (spaces and char == " ")
        out.append(char if printable else f"\\x{code:02x}")
    return "".join(out) + ("…" if len(value) > limit else "")


# Arguments.


class Arguments:
    """The command line, as given; `check()` refuses anything sshd would not pass."""

    __slots__ = ("config", "fingerprint", "positional", "user")

    def __init__(self, args: list[str]) -> None:
        rest = list(args)
        self.config: str | None = DEFAULT_CONFIG
        if rest and rest[0] == "--config":
            self.config, rest = (rest[1] if len(rest) > 1 else None), rest[2:]
        elif rest and rest[0].startswith("--config="):
            self.config, rest = rest[0].removeprefix("--config="), rest[1:]
        if rest and rest[0] == "--":
            rest = rest[1:]
        self.positional = len(rest)
        self.user = rest[0] if rest else ""
        self.fingerprint = rest[1] if len(rest) > 1 else None

    def check(self) -> tuple[str, str, str | None]:
        """(config path, user, fingerprint or None); raises UsageError."""
        if self.config is None:
            raise UsageError("--config needs a file")
        if not 1 <= self.positional <= 2:
            raise UsageError(
                f"expected USER and an optional FINGERPRINT, got {self.positional} arguments"
            )
        if not plain_user_name(self.user):
            raise UsageError(f"USER {shown(self.user)} is not a plain user name")
        if self.fingerprint is not None and not valid_fingerprint(self.fingerprint):
            raise UsageError(
                f"FINGERPRINT {shown(self.fingerprint)} is not SHA256: and 43 base64 "
                "characters (sshd's %f)"
            )
        if not os.path.isabs(self.config) or "\x00" in self.config:
            raise UsageError(f"--config {shown(self.config)} is not an absolute path")
        return self.config, self.user, self.fingerprint


def valid_fingerprint(text: str) -> bool:
    """True if `text` is a SHA-256 fingerprint as sshd and `ssh-keygen -l` print it."""
    if len(text) != 50 or not text.startswith("SHA256:") or not set(text[7:]) <= _BASE64_CHARS:
        return False
    digest = binascii.a2b_base64(text[7:] + "=")
    # The last character carries 2 unused bits, which must be zero.
    return fingerprint_of_digest(digest) == text


def plain_user_name(text: str) -> bool:
    """True if `text` is a plain user name: the portable characters of POSIX user names,
    not starting with a dot or a dash, at most 32 long (useradd's limit); so never `/`,
    `@`, white space or anything a shell or a path would read."""
    return 0 < len(text) <= 32 and text[0] not in ".-" and set(text) <= _USER_CHARS


def well_formed_api_key(text: str) -> bool:
    """True if `text` has the form of an API key (SPEC 2): `gck_` and 43 base64url characters."""
    return len(text) == 47 and text.startswith("gck_") and set(text[4:]) <= _BASE64URL_CHARS


def fingerprint_of_digest(digest: bytes) -> str:
    return "SHA256:" + binascii.b2a_base64(digest, newline=False).decode().rstrip("=")


# Configuration.


class Server:
    """Where the API is: `[server] url`, split and checked."""

    __slots__ = ("host", "host_header", "https", "path", "port")

    def __init__(self, *, https: bool, host: str, port: int, host_header: str, path: str):
        self.https, self.host, self.port = https, host, port
        self.host_header, self.path = host_header, path


class Config:
    """The configuration file, checked whole."""

    __slots__ = ("cache_directory", "max_stale", "path", "server", "timeout", "users")

    def __init__(
        self,
        *,
        path: str,
        server: Server,
        timeout: float,
        cache_directory: str,
        max_stale: float,
        users: dict[str, str],
    ) -> None:
        self.path, self.server, self.timeout = path, server, timeout
        self.cache_directory, self.max_stale, self.users = cache_directory, max_stale, users


_KNOWN_KEYS = {"server": ("url", "timeout"), "cache": ("directory", "max_stale"), "users": ()}


def load_config(path: str) -> Config:
    """The configuration at `path`; raises ConfigError listing every mistake in it."""
    text = read_protected_file(path, "the configuration file", MAX_CONFIG_BYTES, secret=False)
    parser = configparser.ConfigParser(
        interpolation=None,
        inline_comment_prefixes=(";", "#"),
        default_section="\x00",  # no [DEFAULT] magic: a [DEFAULT] section is an unknown one
        empty_lines_in_values=False,
        strict=True,
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # user names keep their case
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        message = " ".join(str(exc).split())
        raise ConfigError([f"{path}: {message}"]) from None
    errors: list[str] = []
    for section in parser.sections():
        if section not in _KNOWN_KEYS:
            errors.append(
                f"{path}: unknown section [{shown(section)}]; "
                "the sections are [server], [cache] and [users]"
            )
            continue
        for key, value in parser.items(section):
            if section != "users" and key not in _KNOWN_KEYS[section]:
                known = " and ".join(_KNOWN_KEYS[section])
                errors.append(
                    f"{path}: unknown key {shown(key)} in [{section}]; [{section}] takes {known}"
                )
            elif "\n" in value:
                errors.append(f"{path}: [{section}] {shown(key)} spans several lines")
    server = _server_url(path, parser.get("server", "url", fallback=None), errors)
    timeout = _duration(
        path, "[server] timeout", parser.get("server", "timeout", fallback=None), errors
    )
    if timeout is None:
        timeout = DEFAULT_TIMEOUT_S
    elif not 0 < timeout <= MAX_TIMEOUT_S:
        errors.append(
            f"{path}: [server] timeout must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds"
        )
    max_stale = _duration(
        path, "[cache] max_stale", parser.get("cache", "max_stale", fallback=None), errors
    )
    directory = parser.get("cache", "directory", fallback=DEFAULT_CACHE_DIRECTORY)
    if not os.path.isabs(directory):
        errors.append(f"{path}: [cache] directory must be an absolute path")
    users: dict[str, str] = {}
    if parser.has_section("users"):
        for user, credential in parser.items("users"):
            if not plain_user_name(user):
                errors.append(f"{path}: [users] {shown(user)} is not a plain user name")
            elif credential.startswith("gck_") or well_formed_api_key(credential.strip()):
                errors.append(
                    f"{path}: [users] {user} looks like an API key itself; put the key in a "
                    "file that only root and the command's user can read, and name that file here"
                )
            elif not os.path.isabs(credential):
                errors.append(
                    f"{path}: [users] {user} must name a credential file by its absolute path"
                )
            else:
                users[user] = credential
    if errors:
        raise ConfigError(errors)
    assert server is not None  # an error was recorded otherwise
    return Config(
        path=path,
        server=server,
        timeout=timeout,
        cache_directory=directory,
        max_stale=DEFAULT_MAX_STALE_S if max_stale is None else max_stale,
        users=users,
    )


def _server_url(path: str, url: str | None, errors: list[str]) -> Server | None:
    if not url:
        errors.append(f"{path}: [server] url is missing; e.g. url = http://127.0.0.1:8000")
        return None
    match = re.fullmatch(_URL, url)
    if match is not None and 0 < int(match.group("port") or 80) < 65536:
        https = match.group("scheme") == "https"
        host = match.group("host")
        return Server(
            https=https,
            host=host.strip("[]"),
            port=int(match.group("port") or (443 if https else 80)),
            host_header=host + (f":{match.group('port')}" if match.group("port") else ""),
            path=match.group("path").rstrip("/"),
        )
    if not url.startswith(("http://", "https://")):
        problem = "it must start with http:// or https://"
    elif "@" in url.split("/")[2]:
        problem = "it must not hold a user name or password (the API key is in [users])"
    elif "?" in url or "#" in url:
        problem = "it must not have a query or a fragment"
    else:
        problem = "it must be a host name or IP address, an optional port and an optional path"
    errors.append(f"{path}: [server] url {shown(url, 200)} cannot be used; {problem}")
    return None


def _duration(path: str, name: str, text: str | None, errors: list[str]) -> float | None:
    """Seconds, from `3`, `2.5`, `500ms`, `30s`, `15m`, `1h`, `2d`; None when not given."""
    if text is None:
        return None
    match = re.fullmatch(_DURATION, text.strip())
    if match is None:
        errors.append(
            f"{path}: {name} = {shown(text, spaces=True)} is not a duration; write a number and an "
            "optional unit (ms, s, m, h or d), e.g. 3, 30s, 15m or 1h"
        )
        return None
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


def read_protected_file(path: str, what: str, limit: int, *, secret: bool) -> str:
    """The text of a file that decides who logs in; raises ConfigError unless it is safe.

    Safe means: a regular file owned by root or by the user running this command, not
    writable by anyone else, in directories that only they can change (a world-writable
    directory is allowed only with the sticky bit, as /tmp has); a `secret` file must
    also be unreadable by others (its group may read it: root:gpucloud-keys 0640).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise ConfigError([f"cannot read {what} {path}: {exc.strerror}"]) from None
    try:
        info = os.fstat(fd)
        problem = _unsafe(info, path, secret=secret)
        if problem is None:
            problem = _unsafe_directories(os.path.dirname(os.path.realpath(path)))
        if problem is not None:
            raise ConfigError([f"{what} {path} {problem}"])
        data = os.read(fd, limit + 1)
    except OSError as exc:
        raise ConfigError([f"cannot read {what} {path}: {exc.strerror}"]) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ConfigError([f"{what} {path} is larger than {limit} bytes"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{what} {path} is not UTF-8 text"]) from None


def _unsafe(info: os.stat_result, path: str, *, secret: bool) -> str | None:
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid not in (0, os.geteuid()):
        return (
            f"is owned by uid {info.st_uid}, neither root nor the user running this command "
            f"(uid {os.geteuid()}); chown root {path}"
        )
    if mode & 0o022:
        return f"can be changed by other users (mode {mode:04o}); chmod go-w {path}"
    if secret and mode & 0o007:
        return (
            f"is readable by other users (mode {mode:04o}); let only its owner and group "
            f"read it: chmod 0640 {path}"
        )
    return None


def _unsafe_directories(directory: str) -> str | None:
    while True:
        try:
            info = os.stat(directory)
        except OSError as exc:
            return f"is in a directory that cannot be checked: {directory}: {exc.strerror}"
        writable_by_others = stat.S_IMODE(info.st_mode) & 0o022
        if info.st_uid not in (0, os.geteuid()) or (
            writable_by_others and not info.st_mode & stat.S_ISVTX
        ):
            return f"is in {directory}, which other users can change"
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def read_credential(path: str, user: str) -> str:
    """The API key in the credential file of `user`; raises ConfigError."""
    text = read_protected_file(
        path, f"[users] {user}: the credential file", MAX_CREDENTIAL_BYTES, secret=True
    )
    secret = text.strip()
    if not well_formed_api_key(secret):
        raise ConfigError(
            [
                f"[users] {user}: the credential file {path} does not hold an API key "
                "(one line: gck_ and 43 more characters, as gpucloud api-keys create prints it)"
            ]
        )
    return secret


# Lines: what the API may send, and what sshd may see.


def check_line(line: str) -> tuple[str | None, str]:
    """(None, fingerprint) if `line` is an authorized_keys line we pass on; (problem, "")."""
    if len(line) > MAX_LINE_CHARS:
        return f"it is longer than {MAX_LINE_CHARS} characters", ""
    if re.search(_CONTROL, line):
        return "it holds a control character", ""
    rest = line
    if line.startswith("expiry-time="):
        match = re.match(_EXPIRY_TIME, line)
        if match is None or not _plausible_time(*(int(part) for part in match.groups())):
            return 'its expiry-time is not "YYYYMMDDHHMMSSZ" followed by a key', ""
        rest = line[match.end() :]
    fields = rest.split(" ", 2)
    key_type = fields[0]
    if key_type not in ACCEPTED_KEY_TYPES:
        if any(char in key_type for char in '=,"'):
            return "it has an option other than expiry-time in front of the key", ""
        return f"its key type {shown(key_type, 40)} is not one the API accepts", ""
    text = fields[1] if len(fields) > 1 else ""
    try:
        blob = binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        blob = b""
    # Decoded and encoded again to the same text: strict base64, in its one spelling.
    if not blob or binascii.b2a_base64(blob, newline=False) != text.encode():
        return "its key is not base64", ""
    parts = _ssh_strings(blob)
    if parts and parts[0] != key_type.encode():
        return "the type inside its key is not the type in front of it", ""
    if len(parts) != _FIELDS[key_type]:
        return "its key is truncated, or has bytes after its end", ""
    if key_type.startswith(("ecdsa-", "sk-ecdsa-")) and not key_type.split("@")[0].endswith(
        "-" + parts[1].decode("latin-1")
    ):
        return "its curve is not the one its type names", ""
    if key_type.endswith(("ed25519", "ed25519@openssh.com")) and len(parts[1]) != 32:
        return "its Ed25519 key is not 32 bytes", ""
    if len(fields) == 3 and not fields[2].strip():
        return "its comment is empty", ""
    return None, fingerprint_of_digest(sha256(blob).digest())


def _ssh_strings(blob: bytes) -> list[bytes]:
    """The blob's fields (SSH wire strings), or [] unless the blob is exactly a run of them."""
    parts, at = [], 0
    while at < len(blob):
        size = int.from_bytes(blob[at : at + 4], "big")
        if at + 4 + size > len(blob):
            return []
        parts.append(blob[at + 4 : at + 4 + size])
        at += 4 + size
    return parts


def _plausible_time(year: int, month: int, day: int, hour: int, minute: int, sec: int) -> bool:
    return (
        year >= 1970
        and 1 <= month <= 12
        and 1 <= day <= 31
        and hour < 24
        and minute < 60
        and sec < 61
    )


def select_lines(body: str, fingerprint: str | None, source: str) -> list[str]:
    """The valid lines of `body` (those of `fingerprint` only, if given); each drop is said."""
    lines = body.split("\n")
    if lines.pop():
        say(f"dropped the last line of {source}: it does not end with a line break")
    selected = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        problem, line_fingerprint = check_line(line)
        if problem is not None:
            say(f"dropped line {number} of {source}: {problem}")
        elif fingerprint is None or line_fingerprint == fingerprint:
            selected.append(line)
    return selected


# HTTP: one GET, spoken by hand. http.client would bring the whole email package along,
# which costs more than the rest of a lookup (docs/decisions.md).


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


class _Reader:
    """Bytes from a socket, never past the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline, self.buffer = sock, deadline, bytearray()

    def _fill(self) -> bool:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise Unreachable("no answer within the timeout")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise Unreachable("no answer within the timeout") from None
        except OSError as exc:
            raise Unreachable(f"the connection failed: {_reason(exc)}") from None
        self.buffer += chunk
        return bool(chunk)

    def line(self, limit: int = 8192) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 2]
                return line
            if len(self.buffer) > limit:
                raise Unreachable("the answer is not HTTP (a line is far too long)")
            if not self._fill():
                raise Unreachable("the connection closed in the middle of the answer")

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise Unreachable("the connection closed in the middle of the answer")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def until_closed(self, limit: int) -> bytes:
        while len(self.buffer) <= limit and self._fill():
            pass
        if len(self.buffer) > limit:
            raise Unreachable(f"the answer is larger than {limit} bytes")
        return bytes(self.buffer)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def http_get(
    server: Server, target: str, headers: list[tuple[str, str]], deadline: float
) -> Response:
    """GET `target` from the server before `deadline` (monotonic); raises Unreachable."""
    try:
        # As bytes: a str host would load the IDNA codec (the URL's host is ASCII anyway).
        host = server.host.encode("ascii")
        addresses = socket.getaddrinfo(host, server.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Unreachable(f"cannot resolve {shown(server.host)}: {_reason(exc)}") from None
    sock = None
    failure = "no address"
    for family, kind, proto, _, address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Unreachable("no connection within the timeout")
        candidate = socket.socket(family, kind, proto)
        try:
            candidate.settimeout(remaining)
            candidate.connect(address)
        except OSError as exc:
            candidate.close()
            failure = "timed out" if isinstance(exc, TimeoutError) else _reason(exc)
            continue
        sock = candidate
        break
    if sock is None:
        raise Unreachable(f"cannot connect to {shown(server.host_header)}: {failure}")
    try:
        if server.https:
            sock = _tls(sock, server.host, deadline)
        request = [f"GET {target} HTTP/1.1", f"Host: {server.host_header}"]
        request += [f"{name}: {value}" for name, value in headers]
        request += ["Connection: close", "", ""]
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall("\r\n".join(request).encode("ascii"))
        except OSError as exc:
            raise Unreachable(f"the request could not be sent: {_reason(exc)}") from None
        return _read_response(_Reader(sock, deadline))
    finally:
        sock.close()


def _tls(sock: socket.socket, host: str, deadline: float) -> socket.socket:
    import ssl  # only for https: it costs as much as the rest of the start-up

    context = ssl.create_default_context()
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        return context.wrap_socket(sock, server_hostname=host.strip("[]"))
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        detail = getattr(exc, "reason", None) or _reason(exc)
        raise Unreachable(f"TLS with {shown(host)} failed: {shown(str(detail), 120)}") from None


def _read_response(reader: _Reader) -> Response:
    match = re.fullmatch(_STATUS_LINE, reader.line())
    if match is None:
        raise Unreachable("the answer is not HTTP")
    status = int(match.group(1))
    headers: dict[str, str] = {}
    size = 0
    while True:
        line = reader.line()
        if not line:
            break
        size += len(line)
        header = re.fullmatch(_HEADER, line)
        if header is None or len(headers) >= MAX_HEADERS or size > MAX_HEADER_BYTES:
            raise Unreachable("the answer has malformed headers")
        name = header.group(1).decode().lower()
        value = header.group(2).decode("latin-1")
        if name in headers and headers[name] != value:
            if name in ("content-length", "transfer-encoding", "etag", "content-type"):
                raise Unreachable(f"the answer has two different {name} headers")
            value = f"{headers[name]}, {value}"
        headers[name] = value
    if status == 304 or 100 <= status < 200 or status == 204:
        return Response(status, headers, b"")
    limit = MAX_BODY_BYTES if status == 200 else 64 * 1024
    encoding = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if encoding is not None:
        if encoding.lower() != "chunked" or length is not None:
            raise Unreachable("the answer's framing is not understood")
        body = _read_chunked(reader, limit)
    elif length is not None:
        if not length.isdigit() or len(length) > 12 or int(length) > limit:
            raise Unreachable("the answer's length is wrong or too large")
        body = reader.exactly(int(length))
    else:
        body = reader.until_closed(limit)
    return Response(status, headers, body)


def _read_chunked(reader: _Reader, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_text = reader.line().split(b";", 1)[0].strip()
        if not 0 < len(size_text) <= 8 or not set(size_text) <= _HEX_DIGITS:
            raise Unreachable("the answer's chunks are malformed")
        size = int(size_text, 16)
        if size == 0:
            while reader.line():  # trailers, ignored
                pass
            return b"".join(parts)
        total += size
        if total > limit:
            raise Unreachable(f"the answer is larger than {limit} bytes")
        parts.append(reader.exactly(size))
        if reader.exactly(2) != b"\r\n":
            raise Unreachable("the answer's chunks are malformed")


class _Worker:
    """The HTTP exchange in a thread, so that the deadline holds even in the resolver."""

    abandoned = False  # set when a lookup thread is left running past its deadline

    def __init__(self) -> None:
        self.result: Response | BaseException | None = None

    def run(
        self, server: Server, target: str, headers: list[tuple[str, str]], deadline: float
    ) -> Response:
        done = _thread.allocate_lock()  # `threading` would be one more import; this is a join
        done.acquire()

        def work() -> None:
            try:
                self.result = http_get(server, target, headers, deadline)
            except BaseException as exc:
                self.result = exc
            finally:
                done.release()

        _thread.start_new_thread(work, ())
        if not done.acquire(timeout=max(deadline - time.monotonic(), 0.0) + 0.05):
            _Worker.abandoned = True
            raise Unreachable("no answer within the timeout")
        result = self.result
        if isinstance(result, Unreachable):
            raise result
        if not isinstance(result, Response):
            raise Unreachable(f"the request failed: {_reason(result or Exception())}")
        return result


# The cache: one file per (user, lookup), in a directory of the command's user alone.


class Entry:
    __slots__ = ("age", "etag", "lines")

    def __init__(self, etag: str | None, lines: list[str], age: float) -> None:
        self.etag, self.lines, self.age = etag, lines, age


def entry_name(user: str, fingerprint: str | None) -> str:
    """`alice@all` for a full lookup, `alice@<fingerprint, file-name safe>` for one key.

    A user name holds no `@`, a fingerprint no `@` or `/` once made safe, so names are
    unique and `alice@` is exactly the prefix of alice's entries.
    """
    if fingerprint is None:
        return f"{user}@all"
    return f"{user}@SHA256-{fingerprint[7:].replace('+', '-').replace('/', '_')}"


class Cache:
    """Answers kept for when the API cannot be reached, and for conditional requests."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.usable = self._prepare()

    def _prepare(self) -> bool:
        try:
            try:
                info = os.lstat(self.directory)
            except FileNotFoundError:
                os.mkdir(self.directory, 0o700)
                info = os.lstat(self.directory)
        except OSError as exc:
            say(f"cache directory {self.directory}: {_reason(exc)}; running without a cache")
            return False
        problem = None
        if not stat.S_ISDIR(info.st_mode):
            problem = "is not a directory"
        elif info.st_uid != os.geteuid():
            problem = f"is owned by uid {info.st_uid}, not by the user running this command"
        elif stat.S_IMODE(info.st_mode) & 0o077:
            problem = f"is open to other users (mode {stat.S_IMODE(info.st_mode):04o})"
        if problem is None:
            return True
        say(
            f"cache directory {self.directory} {problem}; running without a cache "
            f"(it must be the command user's own, mode 0700)"
        )
        return False

    def read(self, name: str) -> Entry | None:
        """The entry, if it is whole, ours and valid; None otherwise (with a message)."""
        path = os.path.join(self.directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            say(f"cache file {path}: {_reason(exc)}; not used")
            return None
        try:
            info = os.fstat(fd)
            if (
                not stat.S_ISREG(info.st_mode)
                or info.st_uid != os.geteuid()
                or stat.S_IMODE(info.st_mode) & 0o077
            ):
                say(f"cache file {path} is not a private file of this user; not used")
                return None
            data = os.read(fd, MAX_BODY_BYTES + 1024)
        except OSError as exc:
            say(f"cache file {path}: {_reason(exc)}; not used")
            return None
        finally:
            os.close(fd)
        entry = self._parse(data, time.time() - info.st_mtime)
        if entry is None:
            say(f"cache file {path} is damaged or truncated; not used")
        return entry

    @staticmethod
    def _parse(data: bytes, age: float) -> Entry | None:
        head, separator, body = data.partition(b"\n\n")
        fields = head.split(b"\n")
        if not separator or len(fields) != 4 or fields[0] != CACHE_MAGIC:
            return None
        etag_field, digest_field, count_field = fields[1:]
        if not (
            etag_field.startswith(b"etag ")
            and digest_field == b"sha256 " + sha256(body).hexdigest().encode()
            and count_field == b"lines " + str(body.count(b"\n")).encode()
        ):
            return None
        try:
            etag = etag_field[5:].decode("ascii")
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if etag != "-" and not re.fullmatch(_ETAG, etag):
            return None
        lines = text.split("\n")
        if lines.pop() or any(check_line(line)[0] is not None for line in lines):
            return None
        return Entry(None if etag == "-" else etag, lines, age)

    def write(self, name: str, etag: str | None, lines: list[str]) -> None:
        """Replace the entry atomically: a reader sees the old file or the new, whole."""
        body = "".join(f"{line}\n" for line in lines).encode()
        header = b"\n".join(
            [
                CACHE_MAGIC,
                b"etag " + (etag or "-").encode(),
                b"sha256 " + sha256(body).hexdigest().encode(),
                b"lines " + str(len(lines)).encode(),
            ]
        )
        final = os.path.join(self.directory, name)
        temporary = os.path.join(self.directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
            try:
                view = memoryview(header + b"\n\n" + body)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            # No fsync of the directory: after a power cut the old entry may come back,
            # with its old time, and max_stale judges it by that time.
            os.replace(temporary, final)
        except OSError as exc:
            say(f"could not write the cache file {final}: {_reason(exc)}")
            try:  # noqa: SIM105
                os.unlink(temporary)
            except OSError:
                pass

    def touch(self, name: str) -> None:
        """Mark the entry as confirmed now (a 304): its age starts again."""
        try:
            os.utime(os.path.join(self.directory, name))
        except OSError as exc:
            say(f"could not refresh the cache file {name}: {_reason(exc)}")

    def remove(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.directory, name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            say(f"could not remove the cache file {name}: {_reason(exc)}")

    def drop(self, user: str) -> int:
        """Remove every entry of `user` (and its unfinished writes); how many were removed."""
        removed = 0
        try:
            names = os.listdir(self.directory)
        except OSError as exc:
            say(f"could not list the cache directory {self.directory}: {_reason(exc)}")
            return 0
        for name in names:
            if name.startswith((f"{user}@", f".{user}@")):
                self.remove(name)
                removed += 1
        return removed


# The lookup.


class Outcome:
    """What one lookup did, for its log line."""

    __slots__ = ("kind", "lines", "reason", "status")

    def __init__(self, kind: str, reason: str, lines: list[str] | None = None, status: int = 0):
        self.kind, self.reason, self.lines, self.status = kind, reason, lines or [], status


def lookup(config: Config, user: str, fingerprint: str | None, deadline: float) -> Outcome:
    """Ask the API (or, when it cannot answer, the cache) for the lines of `user`."""
    credential_path = config.users.get(user)
    if credential_path is None:
        return Outcome("refused", f"user not under [users] in {config.path}")
    secret = read_credential(credential_path, user)
    cache = Cache(config.cache_directory)
    name = entry_name(user, fingerprint)
    entry = cache.read(name) if cache.usable else None
    target = config.server.path + ENDPOINT
    if fingerprint is not None:
        # A checked fingerprint holds only letters, digits, ":", "+" and "/".
        quoted = fingerprint.replace(":", "%3A").replace("+", "%2B").replace("/", "%2F")
        target += f"?fingerprint={quoted}"
    headers = [("x-api-key", secret), ("Accept", "text/plain"), ("User-Agent", PROG)]
    if entry is not None and entry.etag is not None:
        headers.append(("If-None-Match", entry.etag))
    try:
        response = _Worker().run(config.server, target, headers, deadline)
        return _answered(response, cache, name, entry, user, fingerprint)
    except Unreachable as exc:
        why = str(exc)
    if entry is not None and -MAX_CLOCK_SKEW_S <= entry.age < config.max_stale:
        lines = _matching(entry.lines, fingerprint)
        return Outcome("cached", f"API unreachable ({why}); cache {entry.age:.0f}s old", lines)
    if entry is not None:
        why += f"; the cache is {entry.age:.0f}s old, max_stale is {config.max_stale:g}s"
    else:
        why += "; no cached answer"
    return Outcome("refused", f"API unreachable ({why})", status=1)


def _answered(
    response: Response,
    cache: Cache,
    name: str,
    entry: Entry | None,
    user: str,
    fingerprint: str | None,
) -> Outcome:
    status = response.status
    if status in (403, 404):
        match = re.search(_JSON_MESSAGE, response.body.decode("utf-8", "replace"))
        message = f": {shown(match.group(1), 120, spaces=True)}" if match else ""
        dropped = cache.drop(user) if cache.usable else 0
        reason = f"the API refused the credential (HTTP {status}{message})"
        return Outcome("refused", f"{reason}; {dropped} cache files dropped")
    if status == 304:
        if entry is None or entry.etag is None:
            raise Unreachable("HTTP 304 to a request that had no If-None-Match")
        cache.touch(name)
        lines = _matching(entry.lines, fingerprint)
        return Outcome("served", "HTTP 304: the cached answer is current", lines)
    if status != 200:
        raise Unreachable(f"HTTP {status}")
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "text/plain":
        raise Unreachable(f"HTTP 200 with {shown(media_type or 'no content type')}, not text/plain")
    try:
        body = response.body.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreachable("HTTP 200 whose body is not UTF-8") from None
    lines = select_lines(body, fingerprint, "the API's answer")
    etag = response.headers.get("etag")
    if etag is not None and not re.fullmatch(_ETAG, etag):
        say("ignored the answer's ETag: it is malformed")
        etag = None
    if cache.usable:
        if not lines:
            cache.remove(name)
        elif entry is not None and entry.lines == lines and entry.etag == etag:
            cache.touch(name)  # the same answer: no write, no fsync, at most logins
        else:
            cache.write(name, etag, lines)
    if not lines:
        what = "no registered key with this fingerprint" if fingerprint else "no registered keys"
        return Outcome("refused", f"HTTP 200: {what}")
    return Outcome("served", "HTTP 200", lines)


def _matching(lines: list[str], fingerprint: str | None) -> list[str]:
    """The lines of the key `fingerprint` (all lines when None): a cache entry is checked again."""
    if fingerprint is None:
        return lines
    return [line for line in lines if check_line(line)[1] == fingerprint]


def run(arguments: Arguments, started: float) -> Outcome:
    """Check, configure, look up; every failure becomes an Outcome."""
    try:
        config_path, user, fingerprint = arguments.check()
    except UsageError as exc:
        say(f"{exc}; {USAGE}", syslog.LOG_ERR)
        return Outcome("refused", "usage error", status=2)
    try:
        config = load_config(config_path)
        signal.alarm(int(config.timeout) + 1 + ALARM_GRACE_S)
        return lookup(config, user, fingerprint, started + config.timeout)
    except ConfigError as exc:
        for message in exc.messages:
            say(message, syslog.LOG_ERR)
        return Outcome("refused", "configuration error", status=2)


def _write_stdout(lines: list[str]) -> bool:
    view = memoryview("".join(f"{line}\n" for line in lines).encode())
    try:
        while view:
            view = view[os.write(1, view) :]
    except OSError as exc:
        say(f"could not write the lines to stdout: {_reason(exc)}")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of `gpucloud-authorized-keys`; the exit status (see the module's doc)."""
    started = time.monotonic()
    # Anything that would print by mistake goes to stderr; the lines go to fd 1 at the end.
    sys.stdout = sys.stderr
    # The backstop: killed by SIGALRM, the process prints nothing. Re-armed from the
    # configured timeout once it is known.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(int(MAX_TIMEOUT_S) + ALARM_GRACE_S)
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["-h"], ["--help"]):
        sys.stderr.write(f"{USAGE}\n(the lines go to stdout, everything else to stderr)\n")
        return 0
    try:  # noqa: SIM105
        syslog.openlog(PROG, syslog.LOG_PID, syslog.LOG_AUTH)
    except Exception:  # noqa: S110 — no syslog is no reason to refuse a login
        pass
    arguments = Arguments(args)
    try:
        outcome = run(arguments, started)
    except BaseException as exc:  # never a traceback, never a partial line
        say(f"unexpected error: {_reason(exc)}", syslog.LOG_ERR)
        outcome = Outcome("refused", "unexpected error", status=1)
    signal.alarm(0)
    lines = outcome.lines if outcome.status == 0 else []
    fingerprint = shown(arguments.fingerprint) if arguments.fingerprint is not None else "-"
    say(
        f"lookup user={shown(arguments.user)} fingerprint={fingerprint} outcome={outcome.kind} "
        f'lines={len(lines)} reason="{outcome.reason}" time={time.monotonic() - started:.3f}s',
        syslog.LOG_INFO if outcome.kind in ("served", "cached") else syslog.LOG_NOTICE,
    )
    status = outcome.status if not lines or _write_stdout(lines) else 1
    if _Worker.abandoned:  # a thread is stuck (in the resolver): do not wait for it
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
