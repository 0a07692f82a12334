""".ci/install-system.sh (`make test` runs it first): with every tool present it needs no root or sudo."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "install-system.sh"


def test_with_every_tool_present_an_unprivileged_user_needs_no_sudo() -> None:
    # it checked for root or sudo before looking for anything missing: `make test` failed for a user with
    # every tool installed but no sudo (a CI container, say)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    command = ["bash", str(SCRIPT)]
    if os.geteuid() == 0:  # drop to nobody, so the script sees a user without root
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "install-system: ok" in done.stdout
