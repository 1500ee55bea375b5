"""Keys the API refuses, seen over HTTP: a 400 that helps, and a private key never echoed (SPEC 4).

Every refused kind is covered by the parser's unit tests; here one of each family
checks what the user sees.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from tests.functional.helpers import PREFIX, assert_error, auth, create_key, list_keys
from tests.support.keygen import GeneratedKey, KeyCorpus


async def test_a_dsa_key_is_a_400_that_says_to_generate_an_ed25519_key(
    client: httpx.AsyncClient, alice: str, key_corpus: KeyCorpus
) -> None:
    """If a DSA key is sent, then the 400 is SPEC 3's example message, naming the fix."""
    response = await client.post(
        PREFIX,
        headers=auth(alice),
        json={"name": "old", "publicKey": key_corpus.keys["dsa"].public_text},
    )
    assert_error(
        response,
        400,
        "publicKey: DSA keys are no longer accepted; "
        "generate an Ed25519 key with ssh-keygen -t ed25519",
    )


REFUSED = [
    ("RSA 1024", lambda corpus: corpus.keys["rsa1024"].public_text, ("2048", "ssh-keygen")),
    ("certificate", lambda corpus: corpus.certificate, ("certificate", ".pub")),
    (
        "OpenSSH private key",
        lambda corpus: corpus.private_keys["openssh-ed25519"],
        ("private key", ".pub"),
    ),
    ("PEM private key", lambda corpus: corpus.private_keys["pem-rsa"], ("private key", ".pub")),
    ("PuTTY private key", lambda corpus: corpus.private_keys["putty-v3"], ("private key", ".pub")),
]


async def test_a_refused_key_is_a_400_telling_the_user_what_to_do_instead(
    client: httpx.AsyncClient,
    alice: str,
    key_corpus: KeyCorpus,
    ed25519_keys: list[GeneratedKey],
    subtests: pytest.Subtests,
) -> None:
    """If a weak RSA key, a certificate or a private key is sent, then a 400 says what to upload."""
    existing = [await create_key(client, alice, "laptop", ed25519_keys[0].public_text)]
    for label, text_of, hints in REFUSED:
        with subtests.test(label):
            response = await client.post(
                PREFIX,
                headers=auth(alice),
                json={"name": "refused", "publicKey": text_of(key_corpus)},
            )
            error = assert_error(response, 400)
            assert error["message"].startswith("publicKey: "), error
            for hint in hints:
                assert hint in error["message"], (hint, error)
            assert await list_keys(client, alice) == existing


def _secret_lines(private_key: str) -> list[str]:
    """The lines of a private key file that carry key material (not armour or headers)."""
    return [
        line.strip()
        for line in private_key.splitlines()
        if len(line.strip()) >= 16 and "PRIVATE KEY" not in line and ":" not in line
    ]


def _logged_text(records: list[logging.LogRecord]) -> str:
    """Everything the records would write: messages, extra fields, tracebacks."""
    parts: list[str] = []
    for record in records:
        parts.append(record.getMessage())
        parts.extend(repr(value) for value in record.__dict__.values())
    return "\n".join(parts)


async def test_a_private_key_never_appears_in_the_response_or_the_logs(
    client: httpx.AsyncClient,
    alice: str,
    key_corpus: KeyCorpus,
    caplog: pytest.LogCaptureFixture,
    subtests: pytest.Subtests,
) -> None:
    """If a private key of any format is sent, then none of its lines is in the response or a log."""
    caplog.set_level(logging.DEBUG)
    for label, private_key in key_corpus.private_keys.items():
        with subtests.test(label):
            caplog.clear()
            lines = _secret_lines(private_key)
            assert lines, "the sample has no key material to look for"
            response = await client.post(
                PREFIX, headers=auth(alice), json={"name": "oops", "publicKey": private_key}
            )
            assert_error(response, 400)
            exposed: dict[str, Any] = {
                "response": response.text + str(response.headers),
                "logs": _logged_text(caplog.records),
            }
            for where, text in exposed.items():
                leaked = [line for line in lines if line in text]
                assert not leaked, f"{len(leaked)} private key line(s) in the {where}"
    assert await list_keys(client, alice) == []
