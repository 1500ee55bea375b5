"""The documentation stands on its own: the API page covers what is served, links resolve."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpucloud.app import create_app
from gpucloud.config import Settings

ROOT = Path(__file__).resolve().parents[2]
API_PAGE = ROOT / "docs" / "api.md"

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1", re.S)
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


async def _served_operations(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        document: dict[str, Any] = (await http.get("/openapi.json")).json()
    await app.services.database.dispose()
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


async def test_every_served_operation_is_described_in_docs_api(tmp_path: Path) -> None:
    """If /openapi.json serves an operation, then docs/api.md names it as `METHOD /path`."""
    page = API_PAGE.read_text(encoding="utf-8")
    operations = await _served_operations(tmp_path)
    assert ("POST", "/gpu-cloud/ssh-keys") in operations
    missing = sorted(f"{m} {p}" for m, p in operations if f"`{m} {p}`" not in page)
    assert missing == [], f"docs/api.md does not describe: {missing}"


def tracked_markdown() -> list[Path]:
    """The repository's tracked *.md files (skips when this is not a git checkout)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", "*.md"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked Markdown files cannot be listed")
    return [ROOT / name for name in listed.split("\0") if name]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to -."""
    text = _CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading).lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N"))
    return kept.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of a Markdown text: its headings' slugs (numbered when repeated)."""
    found: set[str] = set(_HTML_ANCHOR.findall(markdown))
    seen: dict[str, int] = {}
    for heading in _HEADING.findall(_FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(markdown: str) -> list[str]:
    """The link and image targets of a Markdown text that are not URLs, outside code."""
    prose = _CODE_SPAN.sub("", _FENCE.sub("", markdown))
    targets = _INLINE_LINK.findall(prose) + _REFERENCE.findall(prose)
    return [t for t in targets if t and not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", t)]


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of `path` that leaves the repository at `root`, names no file, or
    names an anchor its Markdown target lacks."""
    broken = []
    for target in relative_links(path.read_text(encoding="utf-8")):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        try:
            resolved.relative_to(root)
        except ValueError:
            broken.append(f"{target} (outside the repository)")
            continue
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif (
            anchor
            and resolved.suffix == ".md"
            and anchor not in anchors(resolved.read_text(encoding="utf-8"))
        ):
            broken.append(f"{target} (no such heading)")
    return broken


def test_every_relative_link_of_every_tracked_markdown_file_resolves() -> None:
    """If a tracked Markdown file links a relative path, then it is a file of the
    repository (and its #anchor a heading there)."""
    files = tracked_markdown()
    assert ROOT / "README.md" in files
    broken = {
        str(path.relative_to(ROOT)): problems for path in files if (problems := broken_links(path))
    }
    assert broken == {}


def test_the_link_check_sees_what_it_must(tmp_path: Path) -> None:
    """If links leave the repository, name missing files or headings, then each is found;
    URLs, links in code and good links are not."""
    text = (
        "[up](../../outside.md) [gone](missing.md) [ok](cli.md) [anchor](cli.md#the-python-client)\n"
        "[bad anchor](cli.md#nowhere) [here](#the-gpucloud-api) [web](https://example.com)\n"
        "`[code](nope.md)`\n\n```\n[fenced](nope.md)\n```\n![picture](images/console.png)\n"
    )
    assert relative_links(text) == [
        "../../outside.md",
        "missing.md",
        "cli.md",
        "cli.md#the-python-client",
        "cli.md#nowhere",
        "#the-gpucloud-api",
        "images/console.png",
    ]
    root = tmp_path / "repository"
    (root / "docs" / "images").mkdir(parents=True)
    (root / "docs" / "images" / "console.png").write_bytes(b"")
    (root / "docs" / "cli.md").write_text("# CLI\n\n## The Python client\n", encoding="utf-8")
    probe = root / "docs" / "api.md"
    probe.write_text("# The gpucloud API\n" + text, encoding="utf-8")
    assert broken_links(probe, root) == [
        "../../outside.md (outside the repository)",
        "missing.md (no such file)",
        "cli.md#nowhere (no such heading)",
    ]
    assert slug("`POST /gpu-cloud/ssh-keys` — register a key") == (
        "post-gpu-cloudssh-keys--register-a-key"
    )


def test_the_readme_says_where_every_package_and_test_folder_is() -> None:
    """If src/gpucloud or tests has a folder, then the README's "Where things are" names it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    folders = [
        path
        for parent in (ROOT / "src" / "gpucloud", ROOT / "tests")
        for path in sorted(parent.iterdir())
        if path.is_dir() and not path.name.startswith((".", "__"))
    ]
    assert folders
    missing = [str(path.relative_to(ROOT)) for path in folders if f"`{path.name}/`" not in section]
    assert missing == []
