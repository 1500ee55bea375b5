"""The CA package stands apart from the web and database layers, as the house style says."""

from __future__ import annotations

from tests.support.modules import modules_loaded_by


def test_the_ca_signs_without_loading_the_web_or_database_layers() -> None:
    """If a process makes a CA key and signs with it, then no web or database module is loaded."""
    code = (
        "import datetime as dt, tempfile\n"
        "from pathlib import Path\n"
        "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey\n"
        "from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat\n"
        "from gpucloud.ca import CertificateAuthority, ValidityPolicy, keys\n"
        "key_file = Path(tempfile.mkdtemp()) / 'ssh_ca'\n"
        "keys.init(key_file)\n"
        "policy = ValidityPolicy(default=dt.timedelta(hours=8), maximum=dt.timedelta(hours=24))\n"
        "ca = CertificateAuthority(key_file, policy=policy)\n"
        "user = Ed25519PrivateKey.generate().public_key()\n"
        "line = user.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()\n"
        "ca.certify(line, owner='alice', key_id='k')\n"
        "ca.trust_list()\n"
    )
    loaded = modules_loaded_by(code)
    heavy = ("fastapi", "starlette", "sqlalchemy", "asyncpg", "aiosqlite", "httpx", "uvicorn")
    outside = [m for m in loaded if m.split(".")[0] in heavy]
    outside += [m for m in loaded if m.startswith(("gpucloud.db", "gpucloud.http", "gpucloud.app"))]
    assert outside == []
