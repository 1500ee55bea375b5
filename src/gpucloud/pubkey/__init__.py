"""The SSH public key parser: what a valid key is (SPEC 4) and its canonical form.

Pure functions over text and bytes, shared by the server, the client and the CLI; it
imports nothing of the web framework, the database or the rest of gpucloud.

    PublicKeyError (ValueError)   the text is not an acceptable public key
"""

from gpucloud.pubkey.errors import PublicKeyError
from gpucloud.pubkey.parse import (
    ACCEPTED_KEY_TYPES,
    MAX_PUBLIC_KEY_BYTES,
    ParsedKey,
    looks_like_private_key,
    parse_public_key,
)

__all__ = [
    "ACCEPTED_KEY_TYPES",
    "MAX_PUBLIC_KEY_BYTES",
    "ParsedKey",
    "PublicKeyError",
    "looks_like_private_key",
    "parse_public_key",
]
