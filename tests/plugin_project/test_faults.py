"""Injected faults: each status, Retry-After, delays, several calls, and what they change."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import pytest
from project_keys import new_public_key

from gpucloud.testing import GpuCloudServer

CREATE = "GPUCloudSSHKeysController_create"
LIST = "GPUCloudSSHKeysController_getUserSSHKeys"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _list(server: GpuCloudServer) -> httpx.Response:
    return httpx.get(
        f"{server.url}/gpu-cloud/ssh-keys", headers={"x-api-key": server.api_key}, timeout=30
    )


@pytest.mark.parametrize(
    ("status", "retry_after"), [(503, 1), (503, 7), (429, 2), (429, 0)], ids=str
)
def test_a_429_or_503_comes_in_the_error_shape_with_retry_after(
    gpucloud_server: GpuCloudServer, status: int, retry_after: int
) -> None:
    """If a 429 or a 503 is injected, then the next call answers it in the API's error
    shape with the Retry-After asked for, and the call after it is served."""
    gpucloud_server.inject_fault(LIST, status=status, retry_after=retry_after)
    faulted = _list(gpucloud_server)
    assert faulted.status_code == status
    assert faulted.headers["retry-after"] == str(retry_after)
    body = faulted.json()
    assert set(body) == {"statusCode", "timestamp", "path", "message", "error"}
    assert body["statusCode"] == status
    assert body["path"] == "/gpu-cloud/ssh-keys"
    assert TIMESTAMP.fullmatch(body["timestamp"])
    assert LIST in body["message"]
    assert _list(gpucloud_server).status_code == 200


@pytest.mark.parametrize("status", [500, 502, 504, 400, 409])
def test_other_statuses_come_without_retry_after(
    gpucloud_server: GpuCloudServer, status: int
) -> None:
    """If another error status is injected, then it is answered in the error shape and
    without Retry-After."""
    gpucloud_server.inject_fault(LIST, status=status)
    faulted = _list(gpucloud_server)
    assert faulted.status_code == status
    assert "retry-after" not in faulted.headers
    assert faulted.json()["statusCode"] == status


def test_a_fault_serves_as_many_calls_as_asked_then_the_next_fault(
    gpucloud_server: GpuCloudServer,
) -> None:
    """If a 503 for 3 calls and then a 500 are injected, then the calls answer 503, 503,
    503, 500, and then 200."""
    gpucloud_server.inject_fault(LIST, status=503, times=3)
    gpucloud_server.inject_fault(LIST, status=500)
    statuses = [_list(gpucloud_server).status_code for _ in range(5)]
    assert statuses == [503, 503, 503, 500, 200]


def test_a_fault_touches_only_its_own_operation(
    gpucloud_server: GpuCloudServer, tmp_path: Path
) -> None:
    """If a fault is injected into create, then listing is served, and the create after
    the faulted one succeeds."""
    gpucloud_server.inject_fault(CREATE, status=503)
    assert _list(gpucloud_server).status_code == 200
    with gpucloud_server.client() as client:
        # The client retries a 503 (after Retry-After: 1 s): the second call is served.
        key = client.create_ssh_key(name="laptop", public_key=new_public_key(tmp_path))
    assert key.is_default


def test_a_faulted_create_changes_nothing(gpucloud_server: GpuCloudServer, tmp_path: Path) -> None:
    """If a create answers an injected 503, then no key was registered."""
    gpucloud_server.inject_fault(CREATE, status=503)
    answer = httpx.post(
        f"{gpucloud_server.url}/gpu-cloud/ssh-keys",
        headers={"x-api-key": gpucloud_server.api_key},
        json={"name": "laptop", "publicKey": new_public_key(tmp_path)},
    )
    assert answer.status_code == 503
    assert _list(gpucloud_server).json() == []


def test_a_delay_alone_serves_the_call_late(gpucloud_server: GpuCloudServer) -> None:
    """If only a delay of 0.5 s is injected (status None), then the next call is served
    normally, at least 0.5 s later, and the one after it at once."""
    gpucloud_server.inject_fault(LIST, status=None, delay_s=0.5)
    began = time.monotonic()
    delayed = _list(gpucloud_server)
    waited = time.monotonic() - began
    assert delayed.status_code == 200
    assert waited >= 0.5
    began = time.monotonic()
    assert _list(gpucloud_server).status_code == 200
    assert time.monotonic() - began < 0.5


def test_a_delay_then_a_status_waits_before_answering(gpucloud_server: GpuCloudServer) -> None:
    """If a 504 with a delay of 0.3 s is injected, then the call answers 504 after at
    least 0.3 s."""
    gpucloud_server.inject_fault(LIST, status=504, delay_s=0.3)
    began = time.monotonic()
    assert _list(gpucloud_server).status_code == 504
    assert time.monotonic() - began >= 0.3


def test_a_delayed_call_does_not_hold_up_other_requests(gpucloud_server: GpuCloudServer) -> None:
    """If one call waits out an injected delay of 2 s, then other calls of the same
    operation and of others are answered meanwhile, at once."""
    gpucloud_server.inject_fault(LIST, status=None, delay_s=2.0)
    answers: list[tuple[int, float]] = []

    def slow_call() -> None:
        began = time.monotonic()
        answers.append((_list(gpucloud_server).status_code, time.monotonic() - began))

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.2)  # the slow call has arrived and is waiting
    began = time.monotonic()
    assert httpx.get(f"{gpucloud_server.url}/healthz").status_code == 200
    assert _list(gpucloud_server).status_code == 200
    others_took = time.monotonic() - began
    thread.join()
    assert others_took < 1.0
    assert answers[0][0] == 200
    assert answers[0][1] >= 2.0


def test_an_unknown_operation_is_refused_with_the_known_ones(
    gpucloud_server: GpuCloudServer,
) -> None:
    """If a fault names an operation that does not exist, then ValueError names the
    operationIds there are."""
    with pytest.raises(ValueError, match=r"'GPUCloudSSHKeysController_list'.*getUserSSHKeys"):
        gpucloud_server.inject_fault("GPUCloudSSHKeysController_list")


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"status": 200}, "status"),
        ({"status": 499}, "not a registered HTTP status"),
        ({"times": 0}, "times"),
        ({"delay_s": -1.0}, "delaySeconds"),
        ({"status": None}, "only delays"),
    ],
)
def test_a_fault_that_cannot_be_served_is_refused(
    gpucloud_server: GpuCloudServer, arguments: dict[str, object], complaint: str
) -> None:
    """If a fault's status, count or delay makes no sense, then ValueError says which."""
    with pytest.raises(ValueError, match=complaint):
        gpucloud_server.inject_fault(LIST, **arguments)
    assert _list(gpucloud_server).status_code == 200
