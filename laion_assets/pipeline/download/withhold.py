"""Bytes never stored: an image whose exact hash is on a hash list is not written to the tars.

The fetch result stays (status `failed`, reason `hash_listed`, its hashes kept, not
transient), so the safety stage excludes its pairs under the `hash_list` rule and a re-run
does not fetch it again. Perceptual (PDQ) matches are a judgement with thresholds: the safety
stage makes it, on stored bytes. An image listed after it was stored leaves the store when
the shard's `downloaded_images` is materialised again (earlier successes are re-checked as
they are carried over) and the older attempt is collected.
"""

from __future__ import annotations

from collections.abc import Callable

from laion_assets.pipeline.safety.lists import EXACT_KINDS, SafetyLists

HASH_LISTED = "hash_listed"

Withhold = Callable[[dict], "str | None"]


def listed_bytes(lists: SafetyLists) -> Withhold:
    """A fetch row's first exact-hash match ("md5 in safety/hash_lists/md5/x.txt"), or None."""
    exact = [(kind, name, hashes) for kind in EXACT_KINDS
             for name, hashes in lists.exact.get(kind, [])]

    def match(row: dict) -> str | None:
        for kind, name, hashes in exact:
            value = row.get(kind)
            if value and value in hashes:
                return f"{kind} in {name}"
        return None

    return match


def withhold_row(row: dict, match: str) -> dict:
    """The fetch result of an image whose bytes are not stored."""
    row.update(status="failed", reason=HASH_LISTED, detail=f"{match}: bytes not stored",
               transient=False, tar=None)
    return row
