"""The command stands alone: the standard library only, rules kept equal to the server's."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gpucloud.api_keys import secrets as api_key_secrets
from gpucloud.node import authorized_keys
from gpucloud.pubkey import ACCEPTED_KEY_TYPES
from tests.instance.command import BARE_ENVIRONMENT, COMMAND, Node, register
from tests.instance.conftest import API
from tests.support.keygen import KINDS, GeneratedKey, KeyCorpus, fingerprint

OURS = {"gpucloud", "gpucloud.node", "gpucloud.node.authorized_keys"}


def imported_modules(*args: str) -> set[str]:
    """The modules `python -X importtime ARGS` imports, beyond what a bare `-c pass` does."""

    def imports(*arguments: str) -> set[str]:
        result = subprocess.run(
            [sys.executable, "-X", "importtime", *arguments],
            capture_output=True,
            text=True,
            env=BARE_ENVIRONMENT,
            cwd="/",
            check=False,
        )
        return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", result.stderr, re.M))

    return imports(*args) - imports("-c", "pass")


def test_a_lookup_loads_only_the_standard_library(
    shared_api: API, node: Node, laptop: GeneratedKey
) -> None:
    """If the console script runs a whole lookup, then it loads only the standard library and itself."""
    alice = shared_api.new_owner()
    register(shared_api.url, alice, laptop.public_line, "laptop")
    node.configure(shared_api.url, {"ubuntu": alice})
    args = (str(COMMAND), "--config", str(node.config), "ubuntu")
    modules = imported_modules(*args)
    assert modules >= OURS  # the measurement saw the command itself
    foreign = {name for name in modules - OURS if name.split(".")[0] not in sys.stdlib_module_names}
    assert not foreign, f"not from the standard library: {sorted(foreign)}"
    # Nor the heavier parts of it that a lookup does not need.
    assert not modules & {
        "http.client",
        "email",
        "ssl",
        "threading",
        "json",
        "typing",
        "encodings.idna",
    }


def test_the_file_runs_alone_with_any_python(
    shared_api: API, node: Node, laptop: GeneratedKey, tmp_path: Path
) -> None:
    """If the module's one file is copied elsewhere, then a bare `python3 -I -S file` looks up as well."""
    alice = shared_api.new_owner()
    register(shared_api.url, alice, laptop.public_line, "laptop")
    node.configure(shared_api.url, {"ubuntu": alice})
    alone = tmp_path / "alone" / "gpucloud-authorized-keys.py"
    alone.parent.mkdir()
    shutil.copy(authorized_keys.__file__, alone)
    for python in {sys.executable, "/usr/bin/python3"}:
        if not Path(python).exists():
            continue
        result = subprocess.run(
            [python, "-I", "-S", str(alone), "--config", str(node.config), "ubuntu"],
            capture_output=True,
            text=True,
            env=BARE_ENVIRONMENT,
            check=False,
        )
        assert (result.returncode, result.stdout) == (0, laptop.public_text), result.stderr


def test_the_accepted_key_types_are_the_servers() -> None:
    """If the API accepts a key type, then the command passes it, and no other type."""
    assert authorized_keys.ACCEPTED_KEY_TYPES == ACCEPTED_KEY_TYPES


@given(st.text(alphabet="gck_ABCXYZabcxyz0189-+/=", max_size=60))
def test_the_api_key_form_is_the_servers(text: str) -> None:
    """If the server would take a string as an API key, then so does the command, and only then."""
    assert authorized_keys.well_formed_api_key(text) == api_key_secrets.is_well_formed(text)


def test_a_real_api_key_has_the_form() -> None:
    """If the server makes a secret, then the command recognises its form."""
    assert authorized_keys.well_formed_api_key(api_key_secrets.generate())


def test_fingerprints_are_ssh_keygens(key_corpus: KeyCorpus, tmp_path: Path) -> None:
    """If sshd names a key by fingerprint, then the command computes the same one from its line."""
    for kind in KINDS:
        key = key_corpus.keys[kind]
        expected = fingerprint(tmp_path, key.public_text, "sha256")[1]
        assert authorized_keys.valid_fingerprint(expected)
        problem, computed = authorized_keys.check_line(key.public_line)
        if key.public_line.split()[0] in ACCEPTED_KEY_TYPES:
            assert (problem, computed) == (None, expected), kind
        else:
            assert problem is not None, kind
