"""Helpers for tests that drive real processes: the CLI and the server."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import pytest

from tests.support.server import GPUCLOUD

RunCLI = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(database_url: str) -> RunCLI:
    """Run `gpucloud …` on this test's database; returns the finished process."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "GPUCLOUD_DATABASE_URL": database_url}
        result = subprocess.run(
            [GPUCLOUD, *args], env=env, capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"gpucloud {' '.join(args)} exited {result.returncode}: {result.stderr}"
            )
        return result

    return run
