"""The hit rule of a retrieval evaluation: which retrieved items count as right for a query.

    attributes  the retrieved item's attribute set equals the query item's exactly (the synthetic world: shape,
                colour, size, position, motion); other items with the same attributes count, and an item
                without attributes falls back to its duplicate group (meta.group, else its id)
    label       the retrieved item has the query item's value of one named attribute (`eval.label: digit`);
                items without that attribute are neither queries nor hits
    instance    the retrieved item is the query item itself, another of its views (meta.group joins true
                duplicates): no labels needed
    auto        label when a label is named, else attributes when the items carry any, else instance
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from omniembed.errors import ConfigError

HIT_RULES = ("auto", "attributes", "label", "instance")
DESCRIPTIONS = {
    "attributes": "the retrieved item has exactly the query's attribute set",
    "label": "the retrieved item has the query item's {label!r}",
    "instance": "the retrieved item is the query item (another of its views)",
}


def resolve_rule(rule: str, label: str | None, attribute_sets: Iterable[dict]) -> str:
    """The concrete rule for `auto`, checked."""
    if rule not in HIT_RULES:
        raise ConfigError(f"eval.hit={rule!r}: must be one of {HIT_RULES}")
    if rule == "label" and not label:
        raise ConfigError("eval.hit='label' needs eval.label, the attribute whose value must match (e.g. digit)")
    if rule != "auto":
        return rule
    if label:
        return "label"
    return "attributes" if any(attribute_sets) else "instance"


def describe(rule: str, label: str | None = None) -> str:
    return DESCRIPTIONS[rule].format(label=label)


def hit_key(rule: str, item_id: str, attributes: dict | None, group: str | None = None,
            label: str | None = None) -> str | None:
    """The key two items share exactly when one is a hit for the other; None: the item takes no part."""
    attributes = attributes or {}
    group = group or item_id
    if rule == "label":
        return None if label not in attributes else json.dumps(attributes[label])
    if rule == "attributes" and attributes:
        return json.dumps(attributes, sort_keys=True)
    return f"group:{group}"
