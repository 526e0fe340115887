"""Rows -> items, for an index that stores a long clip's windows as rows of their own (every backend does)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from omniembed.hits import Hit


def collapse(rows: Iterable[tuple[float, str, dict, str | None, tuple | None]], k: int) -> list[Hit]:
    """One query's rows (score, id, metadata, parent id or None, span or None), best first or not -> its top-k
    items: a window row stands for its item, an item scores its best row, and its span is the time of its best
    window among the rows found."""
    best: dict[str, list] = {}  # item id -> [score, metadata, span, span score]
    for s, id_, meta, parent, span in rows:
        item = parent or id_
        entry = best.setdefault(item, [float(s), meta, None, -np.inf])
        entry[0] = max(entry[0], float(s))
        if span is not None and s > entry[3]:
            entry[2], entry[3] = span, float(s)
    ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:k]
    return [Hit(item, e[0], e[1], e[2]) for item, e in ranked]
