"""omniembed.index: FAISS vectors under stable ids, a SQLite metadata store, crash-safe persistence."""
