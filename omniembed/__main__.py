"""`python -m omniembed ...`: the console script, for environments where its entry point is not on PATH."""

import sys

from omniembed.cli import main

sys.exit(main())
