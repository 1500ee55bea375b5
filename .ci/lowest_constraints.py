"""The lowest versions pyproject.toml allows, as a pip constraints file (`make test-lowest`).

    python .ci/lowest_constraints.py pyproject.toml > constraints.txt
    pip install -c constraints.txt -e . --group test
    python .ci/lowest_constraints.py --check pyproject.toml

Every runtime dependency and every tool of the `test` dependency group is pinned to its
`>=` lower bound, so that the unit tests run on exactly the oldest versions a user may
have. `--check` then says whether the environment holds exactly those versions. Only the
standard library is used: this runs before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

GROUP = "test"
# `name[extras]>=version`, and whatever follows (`,<2`, `; markers`) is ignored.
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([^\s,;]+)")


def requirements(pyproject: dict[str, Any], group: str) -> list[str]:
    """The runtime dependencies and those of `group` (its include-groups followed)."""
    groups = pyproject.get("dependency-groups", {})

    def expand(name: str) -> list[str]:
        found: list[str] = []
        for item in groups[name]:
            if isinstance(item, dict):
                found += expand(item["include-group"])
            else:
                found.append(item)
        return found

    return list(pyproject["project"]["dependencies"]) + expand(group)


def lower_bounds(pyproject: dict[str, Any], group: str) -> dict[str, str]:
    """Each requirement's name and its `>=` version; a requirement without one is an error."""
    bounds: dict[str, str] = {}
    for requirement in requirements(pyproject, group):
        match = REQUIREMENT.match(requirement)
        if match is None:
            raise SystemExit(f"{requirement!r} has no '>=' lower bound; give it one")
        bounds[match[1].lower()] = match[2]
    return bounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument(
        "--check", action="store_true", help="check the installed versions instead of printing"
    )
    arguments = parser.parse_args()
    bounds = lower_bounds(tomllib.loads(arguments.pyproject.read_text("utf-8")), GROUP)
    if not arguments.check:
        for name, version in bounds.items():
            print(f"{name}=={version}")
        return 0
    wrong = []
    for name, version in bounds.items():
        installed = metadata.version(name)
        if installed.split("+")[0] not in (version, f"{version}.0", f"{version}.0.0"):
            wrong.append(f"{name} {installed} (lowest allowed: {version})")
    for line in wrong:
        print(f"not the lowest version: {line}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
