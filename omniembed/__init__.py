"""omniembed: one natively multimodal transformer for any-to-any embedding and retrieval."""

import os

# OpenMP threads that sleep rather than spin while waiting (read when torch or faiss first loads OpenMP, so it
# must be set before either is imported): where the cores are shared with another busy process, spinning
# threads take turns with it and a training step can take twice as long; on idle cores both policies tie.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
