"""The test controls of a server started for tests (SPEC 12): reset, API keys, faults.

Only `gpucloud serve --ephemeral` (and so the pytest plugin, gpucloud.testing) builds the
app with a `Harness` (gpucloud.harness.control); every other server never imports its
modules, so no request can reach them there. See docs/testing.md.

This module itself holds only the name of the control token's header, so that the
pytest plugin can import it without the server.
"""

TOKEN_HEADER = "x-gpucloud-control-token"  # noqa: S105 - the name of a header, not a secret
