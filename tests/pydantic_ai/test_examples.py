"""examples/standalone_invoices.py runs offline and shows what it says it shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_invoice_example_learns_to_use_the_careful_model() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "examples" / "standalone_invoices.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert re.match(r"decision [0-9a-f]{32}: careful ", lines[0])
    rows = {
        name: (int(requests), quality, int(final))
        for name, requests, quality, _, final in (line.split() for line in lines[2:])
    }
    assert set(rows) == {"careful", "sloppy", "down"}
    assert rows["careful"][1] == "1.00" and rows["down"][1] == "0.00"
    assert rows["sloppy"][1] != "1.00"  # its failed validations were learned
    assert rows["down"][2] == 0  # every 503 failed over to another model
    assert sum(final for _, _, final in rows.values()) == 60  # every invoice was answered
    assert rows["careful"][2] > rows["sloppy"][2] + rows["down"][2]
