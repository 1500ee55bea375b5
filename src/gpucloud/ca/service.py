"""The CA as a server uses it: the trust list and new certificates, from files that change.

One `CertificateAuthority` per process, built with the settings. Every call first looks
at the key files (one `stat` each) and reads them again only if one changed:
another inode, size, modification or change time, or mode. So a `gpucloud ca rotate`
or `ca retire` on this machine, or new files copied onto a replica, takes effect at
the next request of every process, with no restart and no signal; and a key file made
readable by others stops being used at once. The `stat` calls cost a small fraction of
one signature (docs/decisions.md, D26).

A file that cannot be used is reported once per change, not re-read at every request:
the failure is kept until the files change again.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from gpucloud.ca import certificates, keys
from gpucloud.ca.certificates import IssuedCertificate, ValidityPolicy
from gpucloud.ca.errors import CAKeyFileError, CANotConfiguredError, CAUnavailableError
from gpucloud.ca.keys import CAKeys

_Stamp = tuple[int, int, int, int, int, int] | None

NOT_CONFIGURED = (
    "This server does not issue SSH certificates: no CA key is configured (the operator "
    "sets GPUCLOUD_SSH_CA_KEY_FILE to a key made by `gpucloud ca init`); until then, "
    "instances can look keys up with the authorized_keys endpoint instead"
)
UNAVAILABLE = (
    "This server's SSH CA key cannot be used right now, so it issues no certificates; "
    "its operator finds the reason in the server's log"
)


class CertificateAuthority:
    """Signs certificates and lists the keys to trust, from `key_file` as it is now.

    `key_file` None means the server has no CA: every call raises CANotConfiguredError.
    """

    def __init__(self, key_file: Path | None, *, policy: ValidityPolicy) -> None:
        self.key_file = key_file
        self.policy = policy
        # Strings, made once: a Path costs more to build and to stat than the stat itself.
        self._paths: tuple[str, ...] = ()
        if key_file is not None:
            self._paths = tuple(
                str(path)
                for path in (key_file, keys.next_file(key_file), keys.trusted_file(key_file))
            )
        # (what the files looked like, what reading them gave): one attribute, replaced
        # whole, so that a thread never sees the stamp of one reading with another's keys.
        self._cache: tuple[tuple[_Stamp, ...], CAKeys | CAKeyFileError] | None = None

    @property
    def configured(self) -> bool:
        """Whether a key file is configured (not whether it is usable)."""
        return self.key_file is not None

    def keys(self) -> CAKeys:
        """The current keys, read again if the files changed.

        Raises CANotConfiguredError without a key file, and CAUnavailableError (caused
        by the CAKeyFileError that says why, for the log) if the files cannot be used.
        """
        if self.key_file is None:
            raise CANotConfiguredError(NOT_CONFIGURED)
        stamps = tuple(_stamp(path) for path in self._paths)
        cached = self._cache
        if cached is None or cached[0] != stamps:
            result: CAKeys | CAKeyFileError
            try:
                result = keys.load(self.key_file)
            except CAKeyFileError as exc:
                result = exc
            cached = (stamps, result)
            self._cache = cached
        if isinstance(cached[1], CAKeyFileError):
            raise CAUnavailableError(UNAVAILABLE) from cached[1]
        return cached[1]

    def trust_list(self) -> str:
        """The body of `GET /gpu-cloud/ssh-ca`: one OpenSSH line per key, signing first.

        Raises as `keys` does.
        """
        return self.keys().trust_list()

    def certify(
        self,
        public_key: str,
        *,
        owner: str,
        key_id: str,
        valid_for: str | None = None,
        key_expires_at: dt.datetime | None = None,
        now: dt.datetime | None = None,
    ) -> IssuedCertificate:
        """A user certificate of a registered key (`publicKey` as stored) for `owner`.

        `valid_for` is the request's `validFor` (None for the default). Raises
        CANotConfiguredError first (no request can succeed here), then ValidityError,
        PrincipalError or UncertifiableKeyError (400s), then as `keys` does.
        """
        if self.key_file is None:
            raise CANotConfiguredError(NOT_CONFIGURED)
        duration = self.policy.resolve(valid_for)
        certificates.principal_for(owner)
        ca_key = self.keys().signing_key
        return certificates.sign(
            ca_key,
            public_key,
            owner=owner,
            key_id=key_id,
            valid_for=duration,
            key_expires_at=key_expires_at,
            now=now,
        )


def _stamp(path: str) -> _Stamp:
    """What changes whenever the file is replaced, rewritten or chmod-ed; None if absent."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        # Unreadable metadata (a directory without search permission): let `load` say so.
        return (-1, -1, -1, -1, -1, -1)
    return (
        info.st_dev,
        info.st_ino,
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
        info.st_mode,
    )
