"""Which modules a piece of Python code loads, run in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys


def modules_loaded_by(code: str) -> list[str]:
    """The names in `sys.modules` after `code` runs in a new process (which must succeed)."""
    probe = f"{code}\nimport sys as _sys\nprint('MODULES', *sorted(_sys.modules))\n"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return result.stdout.split("MODULES", 1)[1].split()
