"""Data: the synthetic multimodal world, the JSONL manifest format and its loader, WebDataset shards."""
