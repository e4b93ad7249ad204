"""Data in: readers for every layout, the audit, splits, the decode cache, augmentation."""

import importlib
from typing import TYPE_CHECKING, Any

from ocula.data.audit import AUDIT_FILENAME, AuditReport, Finding, audit
from ocula.data.dataset import DataSource, Sample
from ocula.data.decode_cache import DecodeCache, decode_resized, default_cache_dir, resize_short_side
from ocula.data.imageio import decode, read_bytes, read_image
from ocula.data.readers import IMAGE_EXTENSIONS, load_source
from ocula.data.splits import stratified_split

if TYPE_CHECKING:
    from ocula.data.augment import (
        MIX_KINDS,
        POLICIES,
        cached_short_side,
        eval_transform,
        get_policy,
        mix_batch,
        random_erasing,
    )
    from ocula.data.preview import write_preview

# torch takes a second or two to import; readers and the audit do not need it, so the
# names that do are loaded on first use.
_LAZY = {
    **dict.fromkeys(
        ("MIX_KINDS", "POLICIES", "cached_short_side", "eval_transform", "get_policy", "mix_batch", "random_erasing"),
        "ocula.data.augment",
    ),
    "write_preview": "ocula.data.preview",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ocula.data' has no attribute {name!r}")


__all__ = [
    "AUDIT_FILENAME",
    "IMAGE_EXTENSIONS",
    "MIX_KINDS",
    "POLICIES",
    "AuditReport",
    "DataSource",
    "DecodeCache",
    "Finding",
    "Sample",
    "audit",
    "cached_short_side",
    "decode",
    "decode_resized",
    "default_cache_dir",
    "eval_transform",
    "get_policy",
    "load_source",
    "mix_batch",
    "random_erasing",
    "read_bytes",
    "read_image",
    "resize_short_side",
    "stratified_split",
    "write_preview",
]
