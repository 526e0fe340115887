"""Shared fixtures. Tests make real media bytes and real servers; nothing here is a mock."""

import os

# Tests run on a 2-core machine beside other work: keep torch from oversubscribing.
os.environ.setdefault("OMP_NUM_THREADS", "2")
