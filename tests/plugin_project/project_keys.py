"""Public keys for the tests, made by ssh-keygen, and where tests record what they saw."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path


def new_public_key(directory: Path, comment: str = "dev@laptop") -> str:
    """A new Ed25519 public key line, made by ssh-keygen in `directory`."""
    path = directory / f"id_{len(list(directory.iterdir()))}"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )
    return Path(f"{path}.pub").read_text().strip()


def record(kind: str, **facts: object) -> None:
    """Append a fact for the test that runs this project (when it asked for them)."""
    target = os.environ.get("PLUGIN_PROJECT_RECORD")
    if target:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(target, "a") as file:
            file.write(json.dumps({"kind": kind, "worker": worker, **facts}) + "\n")
