"""schemathesis against a real server's own /openapi.json: no 5xx, nothing off the schema.

Each test starts `gpucloud serve` on the test's database (SQLite, then PostgreSQL),
loads the OpenAPI document that the server itself serves, and lets schemathesis
generate requests for every operation in it: data that fits the schema (positive) and
data that does not (negative). Every answer must pass four checks: not a 5xx, a status
code the operation documents, a documented content type, and a body that matches the
documented schema for its status. The server's log must show no 5xx and no traceback.

schemathesis's pytest loader for fixtures (`schemathesis.pytest.from_fixture`) fails
under pytest 9.2 (it sets `Node._nodeid`, which pytest 9.2 no longer has), so each
operation's Hypothesis test is built here from `APIOperation.as_strategy`, with
bounded, derandomized settings: well under a minute per backend, the same generator
seed on every run.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gpucloud.ca import keys
from tests.reliability.conftest import PREFIX, server_log_lines
from tests.support.api_keys import create_api_key, revoke_api_key
from tests.support.bulk_keys import ed25519_public_line
from tests.support.server import ServerProcess

CHECKS: tuple[Callable[..., Any], ...] = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)
# Bounded and reproducible: a fixed generator seed (derandomize, no example database),
# no shrinking (a failure is reported as found, with its curl command), and no deadline
# (a real server on a busy CI machine is sometimes slow).
EXAMPLES_PER_OPERATION = 30
BOUNDED = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
# Keys made before the authenticated run, so that the `{id}` operations also meet ids
# that exist (200 and 204), not only ids that do not (404).
SEEDED_KEYS = 4
# Well-formed, never issued: 43 characters of the base64url alphabet.
UNKNOWN_SECRET = "gck_" + "Q" * 43
OPEN_TO_ALL = frozenset({"GET /healthz", "GET /readyz", "GET /metrics", "GET /gpu-cloud/ssh-ca"})
WITH_BODY_OR_QUERY = frozenset(
    {"POST /gpu-cloud/ssh-keys", "GET /gpu-cloud/ssh-keys", "PATCH /gpu-cloud/ssh-keys/{id}"}
)
# A header value holding a control character is not HTTP (RFC 9110, 5.5): the HTTP
# parser refuses the request with a bare 400 before the application sees it, which is
# the ASGI server's job rather than the API's. Negative runs keep their other invalid
# header values (wrong types, lengths, non-ASCII text).
NOT_HTTP_IN_A_HEADER = "".join(chr(c) for c in (*range(9), *range(10, 32), 127))
SERVER_LOG_PROBLEM = re.compile(r'unhandled error|Traceback|"status":\s*5\d\d')

Headers = dict[str, str] | None


@dataclass
class Tally:
    """What one run sent and saw: for the figures and the failure message."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    # Operations that answered 2xx, and how often.
    successes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    no_negative_data: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    @property
    def operations(self) -> set[str]:
        return {label.rsplit(" (", 1)[0] for label in self.cases}


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real `gpucloud serve` on this test's database, with an SSH CA (so that the
    certificate operations sign, rather than answer 501)."""
    key_file = tmp_path / "ca" / "ssh_ca"
    keys.init(key_file)
    env = {"GPUCLOUD_SSH_CA_KEY_FILE": str(key_file)}
    process = ServerProcess(database_url, tmp_path / "server.log", env=env).start()
    yield process
    process.stop()


def load_schema(server: ServerProcess) -> schemathesis.BaseSchema:
    """The OpenAPI document as the server serves it, loaded by schemathesis."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", timeout=10)
    schema.config.generation.update(exclude_header_characters=NOT_HTTP_IN_A_HEADER)
    return schema


def fuzz_every_operation(
    schema: schemathesis.BaseSchema,
    server: ServerProcess,
    *,
    header_choices: list[Headers],
    path_ids: tuple[str, ...] = (),
    prepare: Callable[[schemathesis.Case, st.DataObject], None] | None = None,
) -> Tally:
    """Run every operation of `schema` in both generation modes; returns the tally.

    Each case carries one of `header_choices` (None: schemathesis generates the API key
    header too); `{id}` path parameters are generated or, sometimes, one of `path_ids`;
    `prepare` may adjust a case before it is sent. A failed check is recorded rather
    than raised, so that one run reports every failing operation at once.
    """
    tally = Tally()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in MODES:
            label = f"{operation.label} ({mode.value})"
            strategy = _strategy(operation, mode, header_choices, path_ids)
            try:
                _run_operation(strategy, server.url, tally, label, prepare)
            except (Exception, BaseExceptionGroup) as exc:
                if type(exc).__name__ == "Unsatisfiable" and mode.is_negative:
                    # An operation with no input to get wrong (the health check) has
                    # no negative data; schemathesis says so instead of sending any.
                    tally.no_negative_data.append(operation.label)
                else:
                    tally.failures.append(f"{label}:\n{exc}")
    return tally


def _strategy(
    operation: Any,
    mode: schemathesis.GenerationMode,
    header_choices: list[Headers],
    path_ids: tuple[str, ...],
) -> st.SearchStrategy[schemathesis.Case]:
    has_id = any(parameter.name == "id" for parameter in operation.path_parameters)
    variants = []
    for headers in header_choices:
        variants.append(operation.as_strategy(mode, headers=headers))
        if has_id:
            variants += [
                operation.as_strategy(mode, headers=headers, path_parameters={"id": key_id})
                for key_id in path_ids
            ]
    return st.one_of(variants)


def _run_operation(
    strategy: st.SearchStrategy[schemathesis.Case],
    base_url: str,
    tally: Tally,
    label: str,
    prepare: Callable[[schemathesis.Case, st.DataObject], None] | None,
) -> None:
    @BOUNDED
    @given(case=strategy, data=st.data())
    def run(case: schemathesis.Case, data: st.DataObject) -> None:
        if prepare is not None:
            prepare(case, data)
        tally.cases[label] += 1
        response = case.call(base_url=base_url, timeout=15)
        tally.statuses[response.status_code] += 1
        if 200 <= response.status_code < 300:
            tally.successes[case.operation.label] += 1
        case.validate_response(response, checks=list(CHECKS))

    run()


def real_keys_and_names(case: schemathesis.Case, data: st.DataObject) -> None:
    """Give half of the creates a real public key (and half of those a plain name).

    Generated strings are never valid keys: without this, no create would get past
    validation to the 201, 409 and default-key paths.
    """
    if case.operation.method.upper() != "POST" or not isinstance(case.body, dict):
        return
    if "publicKey" in case.body and data.draw(st.booleans(), label="real key"):
        case.body["publicKey"] = ed25519_public_line("schemathesis")
        if data.draw(st.booleans(), label="plain name"):
            case.body["name"] = f"key-{data.draw(st.integers(0, 50), label='name')}"


def report(capsys: pytest.CaptureFixture[str], run: str, backend: str, tally: Tally) -> None:
    with capsys.disabled():
        print(
            f"\n[schemathesis/{run}/{backend}] {len(tally.operations)} operations, "
            f"{tally.total} cases, statuses {dict(sorted(tally.statuses.items()))}, "
            f"failures {len(tally.failures)}"
        )


def assert_clean(tally: Tally, server: ServerProcess) -> None:
    """No failed check, no 5xx, and no 5xx or traceback in the server's own log."""
    failures = "\n\n".join(tally.failures)
    assert not tally.failures, f"{len(tally.failures)} operation runs failed:\n\n{failures}"
    assert not [status for status in tally.statuses if status >= 500]
    problems = server_log_lines(server, SERVER_LOG_PROBLEM)
    assert problems == [], "server log:\n" + "\n".join(problems[:20])


@pytest.mark.slow
def test_generated_requests_with_a_valid_api_key_get_documented_answers(
    live_server: ServerProcess,
    database_url: str,
    backend: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """If schemathesis sends every operation generated valid and invalid requests with a
    valid API key, then no answer is a 5xx and each has a documented status code, content
    type and body."""
    api_key = create_api_key(database_url, "schemathesis")
    ids = []
    for n in range(SEEDED_KEYS):
        response = httpx.post(
            f"{live_server.url}{PREFIX}",
            headers={"x-api-key": api_key},
            json={"name": f"seed-{n}", "publicKey": ed25519_public_line(f"seed-{n}")},
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["_id"])
    schema = load_schema(live_server)

    tally = fuzz_every_operation(
        schema,
        live_server,
        header_choices=[{"x-api-key": api_key}],
        path_ids=tuple(ids),
        prepare=real_keys_and_names,
    )

    report(capsys, "valid key", backend, tally)
    assert_clean(tally, live_server)
    assert tally.operations == {op.ok().label for op in schema.get_all_operations()}
    # The run reached the success paths, not only the refusals.
    assert {200, 201, 204, 400, 404, 409} <= set(tally.statuses), tally.statuses
    # Invalid data was sent wherever there is data to get wrong: a body or a query.
    assert not set(tally.no_negative_data) & WITH_BODY_OR_QUERY, tally.no_negative_data


@pytest.mark.slow
def test_generated_requests_without_a_valid_api_key_get_documented_answers(
    live_server: ServerProcess,
    database_url: str,
    backend: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """If schemathesis sends every operation generated requests with a missing, malformed,
    unknown, revoked or expired API key, then no answer is a 5xx and each has a
    documented status code, content type and body."""
    revoked = create_api_key(database_url, "revoked")
    revoke_api_key(database_url, revoked)
    expired = create_api_key(database_url, "expired", expires_in=dt.timedelta(seconds=1))
    schema = load_schema(live_server)
    time.sleep(1.1)  # until the expired key has expired

    tally = fuzz_every_operation(
        schema,
        live_server,
        header_choices=[
            None,
            {"x-api-key": UNKNOWN_SECRET},
            {"x-api-key": revoked},
            {"x-api-key": expired},
        ],
    )

    report(capsys, "no or bad key", backend, tally)
    assert_clean(tally, live_server)
    assert {403, 404} <= set(tally.statuses), tally.statuses
    # Only the endpoints open to all may succeed without a valid key, and only they have
    # no input to get wrong (the others have at least the API key header).
    assert set(tally.successes) <= OPEN_TO_ALL, tally.successes
    assert set(tally.no_negative_data) <= OPEN_TO_ALL, tally.no_negative_data


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_metrics_answer_has_its_documented_content_type(live_server: ServerProcess) -> None:
    """If GET /metrics is called, then its answer's content type is one that /openapi.json
    documents for it."""
    case = load_schema(live_server)["/metrics"]["GET"].Case()
    response = case.call(base_url=live_server.url, timeout=15)
    assert response.status_code == 200
    case.validate_response(response, checks=[content_type_conformance])
