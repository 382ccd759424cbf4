"""Where things are and where they run: paths, report markers, CPU pinning."""

from __future__ import annotations

import os
from pathlib import Path


CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent.parent
MARK_BEGIN = "<!-- bench/run: generated from here to the end marker; edits here are overwritten -->"
MARK_END = "<!-- bench/run: end of generated section -->"
SECTION = "## Verify and Check throughput"

# Where each process runs: keyward on one core, the load generator on the
# other, so that every scenario competes for the CPU the same way.
SERVER_CPU = "1"
CLIENT_CPU = "0"
