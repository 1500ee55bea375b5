"""The pytest plugin as a user meets it: pytest run in a subprocess, on a project of its own.

`tests/plugin_project` is copied to a temporary folder (no conftest.py of gpucloud's suite
is above it there) and run with the installed plugin only, as `pip install gpucloud`
leaves it; so is the example of docs/testing.md, taken from the Markdown as written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.secret_audit import SECRET

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
PROJECT = ROOT / "tests" / "plugin_project"
DOC = ROOT / "docs" / "testing.md"
# A fenced Python block whose first line names the file it is, e.g. "# onboarding.py".
_DOC_FILE = re.compile(r"```python\n# (?P<name>[\w.]+\.py)\n(?P<code>.*?)```", re.DOTALL)


class Run:
    """A finished pytest run in a subprocess, and what its tests recorded."""

    def __init__(self, result: subprocess.CompletedProcess[str], folder: Path) -> None:
        self.result = result
        self.output = result.stdout + result.stderr
        self.folder = folder
        record = folder / "record.jsonl"
        lines = record.read_text().splitlines() if record.exists() else []
        self.facts: list[dict[str, Any]] = [json.loads(line) for line in lines]

    def passed(self) -> int:
        found = re.search(r"(\d+) passed", self.output)
        return int(found.group(1)) if found else 0

    def server_logs(self) -> list[Path]:
        return sorted((self.folder / "basetemp").rglob("server.log"))

    def __repr__(self) -> str:  # what a failed assertion shows
        return f"pytest exited {self.result.returncode}:\n{self.output[-6000:]}"


def run_pytest(folder: Path, *args: str) -> Run:
    """pytest in `folder`, in a fresh interpreter, with none of this session's settings."""
    system_tmp = folder / "system-tmp"
    system_tmp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GPUCLOUD_"))}
    env["PLUGIN_PROJECT_RECORD"] = str(folder / "record.jsonl")
    env["TMPDIR"] = str(system_tmp)  # where the servers' own temporary directories go
    result = subprocess.run(
        # pytest-asyncio, installed for gpucloud's own tests, warns when not configured.
        [
            *(sys.executable, "-m", "pytest", "-p", "no:asyncio", "-p", "no:cacheprovider"),
            *("--basetemp", str(folder / "basetemp"), *args),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return Run(result, folder)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of tests/plugin_project, outside gpucloud's tree."""
    copy = tmp_path / "project"
    shutil.copytree(PROJECT, copy)
    return copy


def _assert_servers_stopped_cleanly(run: Run) -> None:
    assert list((run.folder / "system-tmp").iterdir()) == [], "a server left its database"
    logs = run.server_logs()
    assert logs
    for log in logs:
        text = log.read_text()
        assert "Finished server process" in text
        assert SECRET.search(text) is None
        assert not (log.parent / "control-token").exists()


def test_the_project_passes_with_nothing_but_the_installed_plugin(project: Path) -> None:
    """If a project with no conftest.py uses gpucloud_server, then its tests pass on one
    server, started once, stopped at the end with its database removed."""
    run = run_pytest(project)
    assert run.result.returncode == 0, run
    assert run.passed() >= 30, run
    assert "skipped" not in run.output
    urls = {fact["url"] for fact in run.facts if fact["kind"] == "url"}
    assert len(urls) == 1
    assert len(run.server_logs()) == 1
    _assert_servers_stopped_cleanly(run)
    overhead = next(fact for fact in run.facts if fact["kind"] == "overhead")
    # Reported, not judged (a timed assertion would only measure the machine's load):
    # shown with -s, and docs/testing.md quotes it.
    print(f"plugin overhead: {overhead}")


def test_under_xdist_each_worker_has_a_server_of_its_own(project: Path) -> None:
    """If the project runs on 2 pytest-xdist workers, then its tests pass, and each
    worker used one server of its own, on a port of its own."""
    run = run_pytest(project, "-n", "2")
    assert run.result.returncode == 0, run
    by_worker: dict[str, set[str]] = {}
    for fact in run.facts:
        if fact["kind"] == "url":
            by_worker.setdefault(fact["worker"], set()).add(fact["url"])
    assert all(len(urls) == 1 for urls in by_worker.values()), by_worker
    # Every test of the project uses the server, and each worker ran some of them.
    logs = run.server_logs()
    assert sorted(log.parent.parent.name for log in logs) == ["popen-gw0", "popen-gw1"]
    ports = {_serving_port(log) for log in logs}
    assert len(ports) == 2
    _assert_servers_stopped_cleanly(run)


def _serving_port(log: Path) -> str:
    found = re.search(r"gpucloud serving on http://127\.0\.0\.1:(\d+)", log.read_text())
    assert found, log.read_text()[-2000:]
    return found.group(1)


def test_the_example_of_the_docs_runs_as_written(tmp_path: Path) -> None:
    """If the files of docs/testing.md's example are saved as the doc names them, then
    pytest runs every test they hold, and all pass."""
    folder = tmp_path / "example"
    folder.mkdir()
    files = {m["name"]: m["code"] for m in _DOC_FILE.finditer(DOC.read_text())}
    assert sorted(files) == ["onboarding.py", "test_onboarding.py"]
    for name, code in files.items():
        (folder / name).write_text(code)
    run = run_pytest(folder, "-W", "error")
    assert run.result.returncode == 0, run
    assert run.passed() == files["test_onboarding.py"].count("\ndef test_"), run


def test_a_failing_test_report_shows_what_the_server_logged_during_it(tmp_path: Path) -> None:
    """If a test that used the server fails, then its report has a section with the
    server's log lines of that test only; a passing test's report has none."""
    folder = tmp_path / "failing"
    folder.mkdir()
    (folder / "test_on_purpose.py").write_text(
        "import httpx\n\n\n"
        "def test_first(gpucloud_server):\n"
        '    """If the server is asked for a key by name, then it answers."""\n'
        '    httpx.get(gpucloud_server.url + "/gpu-cloud/ssh-keys?name=first-test",\n'
        '              headers={"x-api-key": gpucloud_server.api_key})\n\n\n'
        "def test_second(gpucloud_server):\n"
        '    """If this test fails on purpose, then its report shows the server log."""\n'
        '    httpx.get(gpucloud_server.url + "/gpu-cloud/ssh-keys/6b09acda401897f484e4c160",\n'
        '              headers={"x-api-key": gpucloud_server.api_key})\n'
        '    raise AssertionError("on purpose")\n'
    )
    run = run_pytest(folder)
    assert run.result.returncode == 1, run
    assert "1 failed, 1 passed" in run.output, run
    section = run.output.split("gpucloud server log", 1)[1]
    assert "GET /gpu-cloud/ssh-keys/6b09acda401897f484e4c160 404" in section, run
    assert "POST /_gpucloud/reset 204" in section
    assert "first-test" not in section
    assert run.output.count("gpucloud server log") == 1


def test_a_session_that_never_asks_starts_no_server(tmp_path: Path) -> None:
    """If no test of a session asks for gpucloud_server, then no server is started."""
    folder = tmp_path / "unused"
    folder.mkdir()
    (folder / "test_plain.py").write_text(
        'def test_plain():\n    """If nothing asks, then nothing starts."""\n'
    )
    run = run_pytest(folder, "-W", "error")
    assert run.result.returncode == 0, run
    assert run.server_logs() == []
    assert not list((folder / "basetemp").glob("gpucloud-server*"))
