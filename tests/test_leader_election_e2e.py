"""The leader-election example keeps working through the proxy against a real upstream."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness import CREDENTIALS, S3TierServer

EXAMPLE = Path(__file__).parent.parent / "examples" / "leader_election.py"


def test_leader_election_through_the_proxy_has_one_leader_at_a_time_and_a_takeover(
    proxy_server: S3TierServer,
) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--endpoint", proxy_server.url, "--duration-s", "6"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**CREDENTIALS, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "crash" in done.stdout
    leads = [line for line in done.stdout.splitlines() if line.endswith(" lead")]
    assert len(leads) >= 2
    assert leads[0].split()[2] != leads[1].split()[2]  # a different worker took over
