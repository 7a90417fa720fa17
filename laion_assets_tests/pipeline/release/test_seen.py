"""The compact key sets behind the release's cross-shard dedup."""

from __future__ import annotations

import numpy as np

from laion_assets.pipeline.release.seen import IMAGE_KEY, SeenKeys, image_keys


def test_membership_matches_a_python_set_across_many_batches():
    rng = np.random.default_rng(7)
    seen, reference = SeenKeys(np.int64), set()
    for _ in range(40):
        batch = rng.integers(-1_000, 1_000, 64)
        found = seen.contains(batch)
        assert found.tolist() == [int(k) in reference for k in batch]
        seen.add(batch[~found])
        reference.update(int(k) for k in batch)
    assert len(seen) == len(reference)
    sizes = [len(level) for level in seen.levels]
    assert sizes == sorted(sizes, reverse=True)  # merged like a binary counter
    assert len(sizes) <= int(np.log2(len(reference))) + 1
    assert seen.nbytes == 8 * len(reference)


def test_image_keys_tell_digests_apart_and_keep_missing_ones_distinct():
    digests = ["ab" * 32, "AB" * 32, "ab" * 32, None, ""]
    keys = image_keys(digests)
    assert keys.dtype == IMAGE_KEY
    assert keys[0] == keys[2] and len({bytes(k) for k in keys}) == 4
    seen = SeenKeys(IMAGE_KEY)
    seen.add(keys[:1])
    assert seen.contains(keys).tolist() == [True, False, True, False, False]
