import sys

from omniembed.data.synth.cli import main

sys.exit(main())
