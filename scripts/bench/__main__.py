"""``python scripts/bench [--quick] [--only SCENARIO ...] [--json OUT]``."""

import sys
from pathlib import Path

if not __package__:  # run as a folder: import it as the package ``bench`` (see __init__)
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.main import main

sys.exit(main())
