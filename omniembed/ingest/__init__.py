"""Bulk embedding into an index with Ray Data: `omniembed ingest` (omniembed.ingest.cli).

Needs the `ray` extra (`pip install 'omniembed[ray]'`); nothing else in omniembed imports Ray.
"""

from .pipeline import IngestResult, ingest

__all__ = ["IngestResult", "ingest"]
