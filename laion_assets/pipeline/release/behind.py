"""Releases behind the safety lists: the takedown sensor's second question.

A ledger entry cuts a new version (`releases_behind_ledger`); so does a change to the hash
lists, URL lists or opt-outs once it matches rows a release holds. Each version records the
fingerprint of the list files it was checked against (`lists_version`, as `load_lists`
computes it). When the lists' fingerprint differs, the latest version's rows are matched
against the lists as they are now; a match asks for the next version, run key
`<release>@lists:<fingerprint>`, with a changelog note naming the lists that matched.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from laion_assets.pipeline.core.manifests import ReleaseManifest
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.release.publish import latest_release, list_releases, read_parts
from laion_assets.pipeline.safety.lists import SafetyLists
from laion_assets.pipeline.safety.policy import SafetyPolicy
from laion_assets.pipeline.safety.verify import listed_pairs

KEY_DIGITS = 16  # of the lists' fingerprint, in run keys and notes
MATCHED_ON = ("sha256", "md5", "sha1", "pdq", "pdq_quality")  # provenance columns


@dataclass(frozen=True)
class ListChange:
    """A release whose latest version holds rows the lists now match."""

    manifest: ReleaseManifest
    lists_version: str
    matches: dict[str, int]  # "<rule>: <list detail>" -> released rows it matches

    @property
    def run_key(self) -> str:
        return f"{self.manifest.name}@lists:{self.lists_version[:KEY_DIGITS]}"

    @property
    def note(self) -> str:
        """A changelog line naming every list that matches released rows."""
        found = "; ".join(f"{what} ({n} row{'s' if n != 1 else ''})"
                          for what, n in sorted(self.matches.items()))
        return (f"safety lists changed since v{self.manifest.version} "
                f"(lists {self.lists_version[:KEY_DIGITS]}): {found}")


def checked_key(manifest: ReleaseManifest) -> str:
    """How a sensor remembers a version it already matched against a lists version."""
    return f"{manifest.name}@v{manifest.version}"


def releases_behind_lists(store: DatasetStore, lists: SafetyLists, policy: SafetyPolicy,
                          checked: dict[str, str] | None = None
                          ) -> tuple[list[ListChange], dict[str, str]]:
    """(changes to request, lists version each clean latest version was checked against).

    `checked` is the previous call's second value: a version already found clean against
    this lists version is not read again.
    """
    checked = checked or {}
    changes, seen = [], {}
    for name in list_releases(store):
        manifest = latest_release(store, name)
        key = checked_key(manifest)
        if manifest.lists_version == lists.version or checked.get(key) == lists.version:
            seen[key] = lists.version
            continue
        matches = list_matches(store, manifest, lists, policy)
        if matches:  # matched again each time until the next version is out: a stable key
            changes.append(ListChange(manifest, lists.version, matches))
        else:
            seen[key] = lists.version
    return changes, seen


def list_matches(store: DatasetStore, manifest: ReleaseManifest, lists: SafetyLists,
                 policy: SafetyPolicy) -> dict[str, int]:
    """Released rows the lists match now, counted by rule and list (ledger not included).

    Read part by part, so memory follows the part size, not the release's.
    """
    counts: Counter[str] = Counter()
    for _, part in read_parts(store, manifest.folder, manifest.parts, MATCHED_ON):
        rows = part.rename_columns(["pair_id", "url", *MATCHED_ON])
        for hits in listed_pairs(rows, lists, [], policy):
            for detail in hits.detail:
                counts[f"{hits.rule}: {detail}"] += 1
    return dict(counts)
