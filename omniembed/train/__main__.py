import sys

from omniembed.train.cli import main

sys.exit(main())
