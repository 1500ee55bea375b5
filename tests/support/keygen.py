"""Real SSH keys for tests, made by the real `ssh-keygen`, and read back by it.

Where `ssh-keygen` cannot make a key here (sk keys need a FIDO device; newer OpenSSH
releases refuse DSA and 1024-bit RSA), the public line is built by hand, in the SSH wire
format, from a real key made by `cryptography`. The same builders make the malformed
blobs of the parser's tests, and RSA keys with the ROCA flaw, which no tool here makes.
"""

from __future__ import annotations

import base64
import functools
import math
import secrets
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"

# Kinds the parser accepts, and kinds it must refuse although they are real keys.
ACCEPTED_KINDS = (
    "ed25519",
    "ecdsa256",
    "ecdsa384",
    "ecdsa521",
    "rsa2048",
    "rsa4096",
    "sk-ed25519",
    "sk-ecdsa256",
)
REFUSED_KINDS = ("rsa1024", "dsa")
KINDS = ACCEPTED_KINDS + REFUSED_KINDS

# kind: (ssh-keygen -t, -b)
_KEYGEN_ARGS: Mapping[str, tuple[str, str | None]] = {
    "ed25519": ("ed25519", None),
    "ecdsa256": ("ecdsa", "256"),
    "ecdsa384": ("ecdsa", "384"),
    "ecdsa521": ("ecdsa", "521"),
    "rsa2048": ("rsa", "2048"),
    "rsa4096": ("rsa", "4096"),
    "rsa1024": ("rsa", "1024"),
    "dsa": ("dsa", "1024"),
}

PrivateFormat = Literal["openssh", "pem", "pkcs8"]


@dataclass(frozen=True)
class GeneratedKey:
    """A key pair on disk; `private_path` is None for keys built by hand (sk keys)."""

    public_text: str
    private_path: Path | None
    public_path: Path

    @property
    def public_line(self) -> str:
        """The public key's one line, without its line break."""
        return self.public_text.strip()

    @property
    def private_text(self) -> str:
        """The private key file's text; raises ValueError for a key built by hand."""
        if self.private_path is None:
            raise ValueError("this key was built by hand and has no private key file")
        return self.private_path.read_text()


def generate(
    tmp_path: Path,
    kind: str,
    comment: str = "test@gpucloud",
    *,
    key_format: PrivateFormat = "openssh",
    passphrase: str = "",
) -> GeneratedKey:
    """A new key of `kind` (see KINDS) in a fresh directory under tmp_path.

    `key_format` is the private key file's format (`ssh-keygen -m`). Raises
    subprocess.CalledProcessError if ssh-keygen fails for a kind it should make.
    """
    directory = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=tmp_path))
    private_path = directory / "id"
    public_path = directory / "id.pub"
    if kind in ("sk-ed25519", "sk-ecdsa256"):
        blob = sk_ed25519_blob() if kind == "sk-ed25519" else sk_ecdsa256_blob()
        key_type = blob_key_type(blob)
        public_path.write_text(openssh_line(key_type, blob, comment) + "\n")
        return GeneratedKey(public_path.read_text(), None, public_path)

    key_type_arg, bits = _KEYGEN_ARGS[kind]
    command = [SSH_KEYGEN, "-q", "-t", key_type_arg, "-N", passphrase, "-C", comment]
    command += ["-f", str(private_path)]
    if bits is not None:
        command += ["-b", bits]
    if key_format != "openssh":
        command += ["-m", key_format.upper()]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        if kind not in REFUSED_KINDS:
            result.check_returncode()
        # This OpenSSH no longer makes weak keys; the public line is all the tests need.
        public_path.write_text(openssh_line(*hand_built_weak_key(kind), comment) + "\n")
        return GeneratedKey(public_path.read_text(), None, public_path)
    return GeneratedKey(public_path.read_text(), private_path, public_path)


def hand_built_weak_key(kind: str) -> tuple[str, bytes]:
    """(key type, blob) of a fresh 1024-bit RSA or DSA key made with `cryptography`."""
    if kind == "rsa1024":
        # Weak on purpose: the parser must refuse it.
        numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()  # noqa: S505
        return "ssh-rsa", rsa_blob(numbers.e, numbers.n)
    if kind != "dsa":
        raise ValueError(f"no hand-built stand-in for {kind}")
    dsa_numbers = dsa.generate_private_key(1024).public_key().public_numbers()  # noqa: S505
    params = dsa_numbers.parameter_numbers
    blob = ssh_string(b"ssh-dss") + b"".join(
        ssh_mpint(value) for value in (params.p, params.q, params.g, dsa_numbers.y)
    )
    return "ssh-dss", blob


def certificate(tmp_path: Path, comment: str = "test@gpucloud") -> str:
    """The text of a user certificate (`key-cert.pub`) signed by a fresh CA."""
    ca = generate(tmp_path, "ed25519", "ca")
    user = generate(tmp_path, "ed25519", comment)
    assert ca.private_path is not None
    subprocess.run(
        [
            SSH_KEYGEN,
            "-q",
            "-s",
            str(ca.private_path),
            "-I",
            "id",
            "-n",
            "user",
            str(user.public_path),
        ],
        capture_output=True,
        check=True,
    )
    return user.public_path.with_name("id-cert.pub").read_text()


def export_rfc4716(key: GeneratedKey) -> str:
    """The key as `ssh-keygen -e -f key.pub` prints it: an RFC 4716 block."""
    return _keygen_output(["-e", "-f", str(key.public_path)])


def export_pem(key: GeneratedKey, pem_format: Literal["PKCS8", "PEM"]) -> str:
    """The key as `ssh-keygen -e -m PKCS8|PEM` prints it: a PEM public key."""
    return _keygen_output(["-e", "-m", pem_format, "-f", str(key.public_path)])


def fingerprint(
    tmp_path: Path, public_text: str, hash_name: Literal["sha256", "md5"]
) -> tuple[int, str]:
    """The (bits, fingerprint) that `ssh-keygen -l -E hash_name` prints for the text."""
    path = Path(tempfile.mkdtemp(prefix="fp-", dir=tmp_path)) / "key.pub"
    path.write_text(public_text)
    bits, printed = _keygen_output(["-l", "-E", hash_name, "-f", str(path)]).split()[:2]
    return int(bits), printed


def _keygen_output(arguments: list[str]) -> str:
    return subprocess.run(
        [SSH_KEYGEN, *arguments], capture_output=True, text=True, check=True
    ).stdout


def private_key_samples(tmp_path: Path) -> dict[str, str]:
    """Private keys in every format a user may paste by mistake, by a descriptive name."""
    samples = {
        "openssh-ed25519": generate(tmp_path, "ed25519").private_text,
        "openssh-ed25519-encrypted": generate(
            tmp_path, "ed25519", passphrase="correct horse"
        ).private_text,
        "openssh-rsa": generate(tmp_path, "rsa2048").private_text,
        "pem-rsa": generate(tmp_path, "rsa2048", key_format="pem").private_text,
        "pem-rsa-encrypted": generate(
            tmp_path, "rsa2048", key_format="pem", passphrase="correct horse"
        ).private_text,
        "pem-ecdsa": generate(tmp_path, "ecdsa256", key_format="pem").private_text,
        "pkcs8-rsa": generate(tmp_path, "rsa2048", key_format="pkcs8").private_text,
        "pkcs8-rsa-encrypted": generate(
            tmp_path, "rsa2048", key_format="pkcs8", passphrase="correct horse"
        ).private_text,
        "pkcs8-ecdsa": generate(tmp_path, "ecdsa384", key_format="pkcs8").private_text,
    }
    dsa_key = generate(tmp_path, "dsa", key_format="pem")
    if dsa_key.private_path is not None:
        samples["pem-dsa"] = dsa_key.private_text
    # The inside of an OpenSSH private key, as when its armour lines were not copied.
    samples["openssh-body-only"] = "\n".join(samples["openssh-ed25519"].splitlines()[1:-1])
    samples["putty-v3"] = _putty_private_key()
    samples["putty-v2"] = _putty_private_key().replace(
        "PuTTY-User-Key-File-3", "PuTTY-User-Key-File-2"
    )
    samples["sshcom-encrypted"] = _sshcom_private_key()
    return samples


def _wrapped_base64(data: bytes, width: int = 64) -> list[str]:
    text = base64.b64encode(data).decode()
    return [text[start : start + width] for start in range(0, len(text), width)]


def _putty_private_key() -> str:
    # No PuTTY here: the layout of a .ppk file, around a real public blob and random
    # bytes standing in for the encrypted private part.
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    blob = ssh_string(b"ssh-ed25519") + ssh_string(
        public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    public_lines = _wrapped_base64(blob)
    private_lines = _wrapped_base64(bytes(range(48)))
    return "\n".join(
        [
            "PuTTY-User-Key-File-3: ssh-ed25519",
            "Encryption: none",
            "Comment: ed25519-key-20240101",
            f"Public-Lines: {len(public_lines)}",
            *public_lines,
            f"Private-Lines: {len(private_lines)}",
            *private_lines,
            "Private-MAC: " + "ab" * 32,
            "",
        ]
    )


def _sshcom_private_key() -> str:
    body = _wrapped_base64(bytes(range(256)) * 2, width=70)
    return "\n".join(
        [
            "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----",
            'Comment: "rsa-key-20240101"',
            *body,
            "---- END SSH2 ENCRYPTED PRIVATE KEY ----",
            "",
        ]
    )


# The SSH wire format (RFC 4251 section 5), for building blobs by hand.


def ssh_string(data: bytes) -> bytes:
    """A length-prefixed string."""
    return struct.pack(">I", len(data)) + data


def ssh_mpint(value: int) -> bytes:
    """A non-negative integer as an mpint, in its shortest form."""
    if value == 0:
        return ssh_string(b"")
    # One extra byte when the top bit is set, so that the number stays positive.
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return ssh_string(raw)


def openssh_line(key_type: str, blob: bytes, comment: str | None = None) -> str:
    """`TYPE BASE64 [COMMENT]` with single spaces."""
    line = f"{key_type} {base64.b64encode(blob).decode()}"
    return f"{line} {comment}" if comment else line


def blob_key_type(blob: bytes) -> str:
    """The key type a blob starts with."""
    (length,) = struct.unpack(">I", blob[:4])
    return blob[4 : 4 + length].decode()


def blob_of(public_line: str) -> bytes:
    """The decoded blob of an OpenSSH public key line."""
    return base64.b64decode(public_line.split()[1])


def rsa_blob(exponent: int, modulus: int) -> bytes:
    """An ssh-rsa blob with these numbers, valid or not."""
    return ssh_string(b"ssh-rsa") + ssh_mpint(exponent) + ssh_mpint(modulus)


def ecdsa_blob(curve_bits: Literal[256, 384, 521] = 256, point: bytes | None = None) -> bytes:
    """An ecdsa-sha2-nistpN blob, of a fresh key unless `point` is given."""
    curves: dict[int, ec.EllipticCurve] = {
        256: ec.SECP256R1(),
        384: ec.SECP384R1(),
        521: ec.SECP521R1(),
    }
    if point is None:
        point = uncompressed_point(curves[curve_bits])
    name = f"nistp{curve_bits}".encode()
    return ssh_string(b"ecdsa-sha2-" + name) + ssh_string(name) + ssh_string(point)


def uncompressed_point(curve: ec.EllipticCurve) -> bytes:
    """The public point of a fresh key on `curve`: 0x04, then X and Y."""
    public = ec.generate_private_key(curve).public_key()
    return public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def ed25519_blob(public: bytes | None = None) -> bytes:
    """An ssh-ed25519 blob, of a fresh key unless `public` is given."""
    if public is None:
        key = ed25519.Ed25519PrivateKey.generate().public_key()
        public = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return ssh_string(b"ssh-ed25519") + ssh_string(public)


def sk_ed25519_blob(application: bytes = b"ssh:") -> bytes:
    """A sk-ssh-ed25519@openssh.com blob: type, 32-byte key, FIDO application."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    public = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return ssh_string(b"sk-ssh-ed25519@openssh.com") + ssh_string(public) + ssh_string(application)


def sk_ecdsa256_blob(application: bytes = b"ssh:") -> bytes:
    """A sk-ecdsa-sha2-nistp256@openssh.com blob: type, curve, point, FIDO application."""
    point = uncompressed_point(ec.SECP256R1())
    return (
        ssh_string(b"sk-ecdsa-sha2-nistp256@openssh.com")
        + ssh_string(b"nistp256")
        + ssh_string(point)
        + ssh_string(application)
    )


@dataclass(frozen=True)
class KeyCorpus:
    """One key of every kind, private keys of every format, and a certificate."""

    directory: Path
    keys: Mapping[str, GeneratedKey]
    private_keys: Mapping[str, str]
    certificate: str


def build_corpus(directory: Path) -> KeyCorpus:
    """Make the corpus in `directory`; a few seconds, mostly for RSA 4096."""
    keys = {kind: generate(directory, kind, f"{kind}@gpucloud-test") for kind in KINDS}
    return KeyCorpus(
        directory=directory,
        keys=keys,
        private_keys=private_key_samples(directory),
        certificate=certificate(directory),
    )


# RSA primes made the way Infineon's flawed library made them (ROCA, CVE-2017-15361;
# Nemec et al., ACM CCS 2017, section 2.1): p = k·M + (65537^a mod M). Built here from
# the paper, not from gpucloud.pubkey.roca, so that the tests do not trust the code they test.

# Primes below 1000, for trial division before Miller-Rabin.
_SMALL_PRIMES = tuple(n for n in range(2, 1000) if all(n % d for d in range(2, math.isqrt(n) + 1)))
# The primorial of the primes up to 167, the M of 512-bit keys; every larger key's M is
# a multiple of it, so it carries the same fingerprint.
ROCA_PRIMORIAL = math.prod(prime for prime in _SMALL_PRIMES if prime <= 167)


def is_probable_prime(n: int, rounds: int = 40) -> bool:
    """True if `n` is prime; a composite passes with probability below 4^-rounds (Miller-Rabin)."""
    if n < 2:
        return False
    for prime in _SMALL_PRIMES:
        if n % prime == 0:
            return n == prime
    if n < _SMALL_PRIMES[-1] ** 2:
        return True
    odd, twos = n - 1, 0
    while odd % 2 == 0:
        odd, twos = odd // 2, twos + 1
    for _ in range(rounds):
        x = pow(2 + secrets.randbelow(n - 3), odd, n)
        if x in (1, n - 1):
            continue
        for _ in range(twos - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def roca_prime(bits: int) -> int:
    """A random prime of `bits` bits, its top two set, of the form k·M + (65537^a mod M)."""
    # Top two bits set: the product of two such primes has exactly twice their bits.
    low, high = 3 << (bits - 2), 1 << bits
    first_k, last_k = -(-low // ROCA_PRIMORIAL), high // ROCA_PRIMORIAL - 1
    while True:
        # 64 bits of exponent cover the order of 65537 modulo M (about 2^61).
        power = pow(65537, secrets.randbits(64), ROCA_PRIMORIAL)
        k = first_k + secrets.randbelow(last_k - first_k + 1)
        candidate = k * ROCA_PRIMORIAL + power
        # 65537 must not divide p - 1, or the key would have no private exponent.
        if (candidate - 1) % 65537 and is_probable_prime(candidate):
            return candidate


def roca_primes(modulus_bits: int = 2048) -> tuple[int, int]:
    """Two distinct ROCA-shaped primes whose product is a modulus of exactly `modulus_bits` bits."""
    p = roca_prime(modulus_bits // 2)
    q = roca_prime(modulus_bits // 2)
    while q == p:
        q = roca_prime(modulus_bits // 2)
    return p, q


def rsa_private_key(p: int, q: int, exponent: int = 65537) -> rsa.RSAPrivateKey:
    """The RSA private key of these primes, as `cryptography` builds and checks it."""
    d = pow(exponent, -1, math.lcm(p - 1, q - 1))
    public = rsa.RSAPublicNumbers(exponent, p * q)
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), public
    )
    return numbers.private_key()


@functools.cache
def one_blob_of_each_type() -> tuple[tuple[str, bytes], ...]:
    """(key type, wire blob) of one valid key of each accepted type, built by hand."""
    numbers = rsa.generate_private_key(65537, 2048).public_key().public_numbers()
    return (
        ("ssh-ed25519", ed25519_blob()),
        ("ecdsa-sha2-nistp256", ecdsa_blob(256)),
        ("ecdsa-sha2-nistp384", ecdsa_blob(384)),
        ("ecdsa-sha2-nistp521", ecdsa_blob(521)),
        ("ssh-rsa", rsa_blob(numbers.e, numbers.n)),
        ("sk-ssh-ed25519@openssh.com", sk_ed25519_blob()),
        ("sk-ecdsa-sha2-nistp256@openssh.com", sk_ecdsa256_blob()),
    )
