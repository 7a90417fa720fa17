"""Short content fingerprints, used as data versions of stage outputs."""

from __future__ import annotations

import hashlib
import json


def fingerprint(*parts: object) -> str:
    """16 hex digits of the sha256 of the parts as canonical JSON."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
