"""Testing code that uses the SSH-keys API against a real, local gpucloud (SPEC 12).

Installing gpucloud registers the pytest plugin `gpucloud.testing.plugin` (entry point
`pytest11`), whose fixture `gpucloud_server` gives each test a `GpuCloudServer`:

    def test_registers_the_key(gpucloud_server):
        gpucloud_server.inject_fault("GPUCloudSSHKeysController_create", status=503)
        with gpucloud_server.client() as client:
            client.create_ssh_key(name="laptop", public_key=PUBLIC_KEY)  # retried once

One `gpucloud serve --ephemeral` process serves the whole session (one per pytest-xdist
worker), started when a test first asks for it and wiped before each test. See
docs/testing.md. Importing this package loads nothing of the server or of httpx until a
name is used, because pytest imports the plugin in every project where gpucloud is
installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpucloud.testing._server import EphemeralServer, GpuCloudServer, GpuCloudServerError

__all__ = ["EphemeralServer", "GpuCloudServer", "GpuCloudServerError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gpucloud.testing import _server

        return getattr(_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
