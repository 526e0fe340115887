"""Retrieval evaluation: recall@k and mAP for every ordered pair of modalities at every Matryoshka dim, with a
documented hit rule. One implementation for `omniembed eval`, training's periodic evaluation and
bench/recall_matrix (numpy only; the embedding is the caller's: ONNX Runtime, torch, or token ids).

    hits.py     what counts as a hit: same attribute set, same label, or the item itself
    metrics.py  recall@k, average precision, chance level
    matrix.py   the views of a manifest's items, and the matrix over their vectors
    report.py   markdown, JSON and a heatmap PNG
    cli.py      `omniembed eval BUNDLE_OR_RUN --manifest heldout.jsonl`
"""
