import sys

from omniembed.export.cli import main

sys.exit(main())
