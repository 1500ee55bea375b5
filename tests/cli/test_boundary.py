"""The user CLI is a thin shell over the client's public surface, and nothing more."""

from __future__ import annotations

import ast
from pathlib import Path

import gpucloud.cli
import gpucloud.client

CLI = Path(gpucloud.cli.__file__).parent


def _private_uses_of_the_client(source: str) -> list[str]:
    """Every `gpucloud.client._…` module or `_…` name of gpucloud.client that `source` imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            modules = [node.module]
            if node.module == "gpucloud.client":
                found += [
                    f"gpucloud.client.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") or alias.name not in gpucloud.client.__all__
                ]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[:2] == ["gpucloud", "client"] and any(p.startswith("_") for p in parts[2:]):
                found.append(module)
    return found


def test_the_cli_imports_only_public_names_of_the_client() -> None:
    """If a module of gpucloud/cli imports a private module or name of gpucloud.client, then this fails."""
    modules = sorted(CLI.rglob("*.py"))
    assert modules, CLI
    private = {
        str(path.relative_to(CLI)): uses
        for path in modules
        if (uses := _private_uses_of_the_client(path.read_text(encoding="utf-8")))
    }
    assert private == {}


def test_the_check_sees_a_private_import() -> None:
    """If a module imports gpucloud.client._config or a private name, then the check names it."""
    source = (
        "from gpucloud.client._config import resolve\n"
        "import gpucloud.client._retry\n"
        "from gpucloud.client import _Core, Client\n"
    )
    assert _private_uses_of_the_client(source) == [
        "gpucloud.client._config",
        "gpucloud.client._retry",
        "gpucloud.client._Core",
    ]
