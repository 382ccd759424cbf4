"""Entry point: `python3 bench/harness ARGS` (what bench/run calls)."""

import sys
from pathlib import Path

# Run as a directory, Python puts bench/harness itself on the path; the
# modules import each other as `harness.x`, so bench/ goes there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from harness.cli import main  # noqa: E402

sys.exit(main())
