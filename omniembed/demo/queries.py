"""The demo's cross-modal queries: index held-out items through the service, then query across modalities.

Each held-out item is stored once per view (`<id>/text`, `<id>/image`, ...) with its attributes as payload,
so a query filtered to one modality ranks that modality's views of every held-out item. A hit is the
synthetic world's rule: the top result has exactly the query item's attribute set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from omniembed.data.manifest import Item

# (name, query modality, target modality); "interleaved" = a caption followed by the item's image.
QUERY_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("text->image", "text", "image"),
    ("image->audio", "image", "audio"),
    ("audio->video", "audio", "video"),
    ("video->text", "video", "text"),
    ("text+image->video", "interleaved", "video"),
)
MODALITIES = ("text", "image", "audio", "video")


def view_of(item: Item, modality: str) -> Any | None:
    """The item's view as a client item (str, {"image": bytes}, or a list of segments); None if absent."""
    if modality == "text":
        return item.texts[0] if item.texts else None
    if modality == "interleaved":
        if not item.texts or "image" not in item.media:
            return None
        return [item.texts[-1], {"image": item.media["image"].read_bytes()}]
    media = item.media.get(modality)
    return None if media is None else {modality: media.read_bytes()}


def describe(item: Item, modality: str) -> str:
    if modality == "text":
        return repr(item.texts[0])
    if modality == "interleaved":
        return f"[{item.texts[-1]!r} + {item.media['image'].source.rsplit('/', 1)[-1]}]"
    return item.media[modality].source.rsplit("/", 1)[-1]


def index_entries(items: Iterable[Item]) -> list[tuple[str, Any, dict]]:
    """(id, client item, metadata) for every view of every item."""
    out = []
    for item in items:
        for modality in MODALITIES:
            view = view_of(item, modality)
            if view is None:
                continue
            uri = item.texts[0] if modality == "text" else item.media[modality].source
            out.append((f"{item.id}/{modality}", view,
                        {"modality": modality, "uri": uri, "payload": {"item": item.id, **item.attributes}}))
    return out


@dataclass
class PairResult:
    name: str
    queries: int = 0
    hits: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.hits / self.queries if self.queries else 0.0


def same_attributes(payload: dict, item: Item) -> bool:
    return all(payload.get(k) == v for k, v in item.attributes.items()) and bool(item.attributes)


def run_queries(search: Callable[[Any, str], list], items: list[Item], show: int,
                progress: Callable[[Iterable], Iterable] = iter) -> list[PairResult]:
    """search(query item, target modality) -> hits (best first) from the service, for every pair."""
    results = []
    for name, source, target in QUERY_PAIRS:
        res = PairResult(name)
        for item in progress([i for i in items if view_of(i, source) is not None]):
            hits = search(view_of(item, source), target)
            ok = bool(hits) and same_attributes(hits[0].metadata.get("payload", {}), item)
            res.queries += 1
            res.hits += ok
            if len(res.examples) < show:
                got = hits[0].metadata.get("payload", {}) if hits else {}
                got_attrs = " ".join(str(got.get(k)) for k in item.attributes) or "nothing"
                res.examples.append(f"{describe(item, source)} -> {hits[0].id if hits else '-'} "
                                    f"({got_attrs}; score {hits[0].score:.3f}) "
                                    f"{'MATCH' if ok else 'miss: wanted ' + ' '.join(map(str, item.attributes.values()))}")
        results.append(res)
    return results
