"""The demo's cross-modal queries: index held-out items through the service, then query across modalities.

Each held-out item is stored once per view (`<id>/text`, `<id>/image`, ...) with its id, duplicate group and
attributes as payload, so a query filtered to one modality ranks that modality's views of every held-out
item. A hit is the run's hit rule (omniembed.eval.hits) applied to the top result.

Which queries: on a held-out set with all four modalities, the headline pairs (QUERY_PAIRS); on one with
fewer, every ordered pair of the modalities it has. A pair that cannot be formed is listed as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from omniembed.data.manifest import Document, Item
from omniembed.eval.hits import hit_key

# (name, query modality, target modality); "interleaved" = a caption followed by the item's image.
QUERY_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("text->image", "text", "image"),
    ("image->audio", "image", "audio"),
    ("audio->video", "audio", "video"),
    ("video->text", "video", "text"),
    ("text+image->video", "interleaved", "video"),
)
MODALITIES = ("text", "image", "audio", "video")
VIEW_NAMES = {"interleaved": "caption+image"}


def has_view(item: Item, modality: str) -> bool:
    if modality == "text":
        return bool(item.texts)
    if modality == "interleaved":
        return bool(item.texts) and "image" in item.media
    return modality in item.media


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
            if view is not None:
                out.append((entry_id(item, modality), view, entry_metadata(item, modality)))
    return out


def entry_id(item: Item, modality: str) -> str:
    """The index id of one view of an item: `<item id>/<modality>` (also what `omniembed ingest` writes)."""
    return f"{item.id}/{modality}"


def entry_metadata(item: Item, modality: str) -> dict:
    """The stored metadata of one view: its modality, where it came from, and the item's id, group, attributes."""
    uri = item.texts[0] if modality == "text" else item.media[modality].source
    return {"modality": modality, "uri": uri, "payload": entry_payload(item)}


def entry_payload(record: Item | Document) -> dict:
    """What a stored entry says of the record it came from: its id, duplicate group and attributes."""
    return {"item": record.id, "group": str(record.meta.get("group", record.id)), "attributes": dict(record.attributes)}


def plan(items: list[Item]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(the pairs to query, the headline pairs that cannot be formed on these items, with why)."""
    present = {m for m in MODALITIES if any(has_view(i, m) for i in items)}
    formable = {m for m in (*MODALITIES, "interleaved") if any(has_view(i, m) for i in items)}
    skipped = []
    for name, source, target in QUERY_PAIRS:
        absent = [m for m in (source, target) if m not in formable]
        if absent:
            skipped.append(f"{name}: the held-out set has no {' or '.join(VIEW_NAMES.get(m, m) for m in absent)} views")
    if present == set(MODALITIES):
        pairs = [p for p in QUERY_PAIRS if p[1] in formable and p[2] in formable]
    else:
        pairs = [(f"{q}->{t}", q, t) for q in MODALITIES for t in MODALITIES if q != t and {q, t} <= present]
    return pairs, skipped


@dataclass
class PairResult:
    name: str
    queries: int = 0
    hits: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.hits / self.queries if self.queries else None


def item_key(item: Item, rule: str, label: str | None) -> str | None:
    return hit_key(rule, item.id, item.attributes, str(item.meta.get("group", item.id)), label)


def payload_key(payload: dict, rule: str, label: str | None) -> str | None:
    return hit_key(rule, payload.get("item", ""), payload.get("attributes"), payload.get("group"), label)


def run_queries(search: Callable[[Any, str], list], items: list[Item], show: int, rule: str = "attributes",
                label: str | None = None, pairs: list[tuple[str, str, str]] | None = None,
                progress: Callable[[Iterable], Iterable] = iter) -> list[PairResult]:
    """search(query item, target modality) -> hits (best first) from the service, for every pair; a query
    is a hit when its top result has the query item's hit key (items the rule cannot judge are not asked)."""
    results = []
    for name, source, target in (QUERY_PAIRS if pairs is None else pairs):
        res = PairResult(name)
        asked = [i for i in items if has_view(i, source) and item_key(i, rule, label) is not None]
        for item in progress(asked):
            hits = search(view_of(item, source), target)
            want = item_key(item, rule, label)
            top = hits[0] if hits else None
            ok = top is not None and payload_key(top.metadata.get("payload", {}), rule, label) == want
            res.queries += 1
            res.hits += ok
            if len(res.examples) < show:
                got = (top.metadata.get("payload", {}).get("attributes") or {}) if top else {}
                shown = " ".join(str(got.get(k)) for k in item.attributes) or (top.id if top else "nothing")
                wanted = " ".join(map(str, item.attributes.values())) or item.id
                res.examples.append(f"{describe(item, source)} -> {top.id if top else '-'} ({shown}"
                                    + (f"; score {top.score:.3f})" if top else ")")
                                    + (" MATCH" if ok else f" miss: wanted {wanted}"))
        results.append(res)
    return results
