import sys

from omniembed.demo.cli import main

sys.exit(main())
