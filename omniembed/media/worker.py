"""A DecodePool worker (omniembed.media.pool): reads pickled (function, items) chunks from stdin, writes each
chunk's results (or the exception of each failing item, in its place) to stdout, until stdin closes."""

from __future__ import annotations

import os
import pickle
import sys


def main() -> int:
    # The protocol owns fd 1: anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer
    from omniembed.media.container import set_codec_threads
    from omniembed.media.pool import _call

    set_codec_threads(1)  # the workers fill the CPUs: decoder threads of their own would only oversubscribe them

    while True:
        try:
            fn, chunk = pickle.load(inp)
        except EOFError:
            return 0
        pickle.dump([_call(fn, x) for x in chunk], out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
