"""Hash lists for the safety stage: exact digests (md5, sha1, sha256) and PDQ perceptual hashes.

List format (what partners distribute): one hex hash a line, any case, surrounding whitespace
ignored, blank lines and lines starting with ``#`` ignored. Only the first field of a line is
read: it ends at a comma, a tab or a space, so ``hash,label`` (CSV), ``hash<TAB>anything``
(TSV) and ``hash  filename`` (``md5sum`` output) lines work. Anything else (wrong length,
non-hex digits) raises :class:`HashListError` naming the source and line.

Parsing is vectorised: the text is cut into blocks of whole lines, every line's first field
is gathered with numpy and decoded by one ``bytes.fromhex`` per block; Python only touches a
line to report an error (10 M md5 lines: ~1.4 s from a file, see BENCHMARKS.md). Passing the
whole text as bytes, or a file object, is fastest; an iterable is taken as one line an item.

:class:`ExactHashList` keeps each digest once as big-endian uint64 words, sorted, plus a
bucket table over the top bits of the first word (about 4 entries a bucket). A lookup reads
the bucket's bounds and scans its few entries in order, verifying the whole digest: O(1)
expected, as digests are uniformly distributed. Against a numpy open-addressing table it needs
no empty slots (the table would be 2x the keys at load 0.5) and stays a plain sorted array;
against a Python ``set`` of bytes it is ~5x smaller (16 bytes per md5 instead of ~90), and
``matches`` on a batch is faster than looping over a set. Building peaks at about the digests
plus 1.5x the table.

:class:`PdqIndex` is multi-index hashing (Norouzi et al.): the 256 bits are cut into 16
chunks of 16 bits, each with an inverted index (entries sorted by chunk value + an offset
table of 65,536 buckets). With ``d = 16 r + a`` (0 <= a < 16), a hash within distance d has
one of chunks 0..a within r bits, or one of chunks a+1..15 within r - 1 bits (otherwise the
distance is at least (a + 1)(r + 1) + (15 - a) r = d + 1). So d = 31 probes every chunk at
its value and its 16 one-bit flips; d <= 15 probes at most d + 1 chunks exactly. Candidates
are verified by popcount over all 256 bits, so results are exact. Radii above 2 (d >= 48)
fall back to a vectorised brute force (:meth:`PdqIndex.brute_force`). Memory: ~116 bytes an
entry (the hash, a copy of its first 128 bits for a first filter, 16 int32 positions).
Indexes in results are positions in the index, which keeps each distinct hash once in first-
seen order: :meth:`PdqIndex.hex_at` and :meth:`PdqIndex.source_of` say what matched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from itertools import combinations, islice
from typing import IO

import numpy as np

HASH_KINDS: dict[str, int] = {"md5": 32, "sha1": 40, "sha256": 64}  # kind -> hex digits
PDQ_DIGITS = 64
PDQ_MAX_DISTANCE = 31  # ThreatExchange's usual match threshold
PDQ_MIN_QUALITY = 50  # images under this PDQ quality are not matched

Lines = Iterable[str] | Iterable[bytes] | IO[bytes] | IO[str] | bytes | str
Source = tuple[str, Lines]  # (name shown in errors, its lines)

_BLOCK_BYTES = 1 << 24  # parse this much text at a time
_BATCH_LINES = 1 << 16  # join this many iterated lines at a time
_BOM = b"\xef\xbb\xbf"
_NEWLINE = 10
_HASH_SIGN = ord("#")


def _table(chars: bytes) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[list(chars)] = True
    return table


_BLANK = _table(b" \t\r\v\f")  # leading whitespace (not the newline)
_FIELD_END = _table(b" \t\r\v\f\n,")  # what may follow a hash
_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
for _value, _char in enumerate(b"0123456789abcdef"):
    _HEX_VALUE[_char] = _HEX_VALUE[ord(chr(_char).upper())] = _value


class HashListError(ValueError):
    """A malformed hash list line; the message is ``source:line: reason``."""


# -- parsing ------------------------------------------------------------------------------


def read_hex_lines(
    lines: Lines, *, source: str, digits: int, what: str | None = None
) -> np.ndarray:
    """The hashes of one list as a (n, digits // 2) uint8 array, in file order.

    `lines` is an iterable of lines (str or bytes, with or without their newline), a file
    object (read in blocks) or the whole text as bytes/str (fastest). `what` names the hash in
    error messages (default ``"<digits>-digit hex"`` only).
    """
    if digits <= 0 or digits % 2:
        raise ValueError(f"digits must be even and positive, got {digits}")
    parser = _HexParser(source, digits, what)
    for block in _blocks(lines):
        parser.feed(block)
    return parser.result()


def read_sources(
    sources: Iterable[Source], *, digits: int, what: str | None = None
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Every source's hashes concatenated, and (name, hashes read) per source."""
    parts, counts = [], []
    for name, lines in sources:
        part = read_hex_lines(lines, source=name, digits=digits, what=what)
        parts.append(part)
        counts.append((name, len(part)))
    if len(parts) == 1:
        return parts[0], counts
    return np.concatenate(parts or [np.empty((0, digits // 2), dtype=np.uint8)]), counts


def _blocks(lines: Lines) -> Iterator[bytes]:
    """The text in blocks of whole lines, each ending with a newline (the last may not)."""
    if isinstance(lines, (bytes, bytearray, memoryview, str)):
        chunks: Iterable[bytes] = [_encode(lines)]
    elif hasattr(lines, "read"):
        chunks = iter(lambda: _encode(lines.read(_BLOCK_BYTES)), b"")
    else:
        chunks = _joined_batches(iter(lines))
    carry = b""
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        start = 0
        while len(data) - start > _BLOCK_BYTES:
            cut = data.rfind(b"\n", start, start + _BLOCK_BYTES) + 1
            cut = cut or data.find(b"\n", start + _BLOCK_BYTES) + 1  # a very long line
            if not cut:
                break
            yield data[start:cut]
            start = cut
        cut = data.rfind(b"\n", start) + 1
        if cut > start:
            yield data[start:cut]
            start = cut
        carry = data[start:]
    if carry:
        yield carry


def _encode(text: bytes | bytearray | memoryview | str) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else bytes(text)


def _joined_batches(items: Iterator[str] | Iterator[bytes]) -> Iterator[bytes]:
    """Items joined as lines: an item is one line unless it holds newlines of its own."""
    while batch := list(islice(items, _BATCH_LINES)):
        newline = "\n" if isinstance(batch[0], str) else b"\n"
        try:
            joined = newline[:0].join(batch)
        except TypeError:  # str and bytes mixed
            batch = [_encode(item) for item in batch]
            newline, joined = b"\n", b"".join(batch)
        found = joined.count(newline)
        if found == 0:
            joined = newline.join(batch) + newline
        elif found != len(batch) or not joined.endswith(newline):
            joined = newline[:0].join(x if x.endswith(newline) else x + newline for x in batch)
        yield _encode(joined)


class _HexParser:
    """Parses blocks of whole lines, counting lines across blocks for error messages."""

    def __init__(self, source: str, digits: int, what: str | None) -> None:
        self.source, self.digits, self.what = source, digits, what
        self.lines_before = 0
        self.parts: list[np.ndarray] = []

    def feed(self, block: bytes) -> None:
        if not self.lines_before and not self.parts and block.startswith(_BOM):
            block = b" " * len(_BOM) + block[len(_BOM) :]
        n, digits = len(block), self.digits
        text = np.frombuffer(block + b"\n" * (digits + 1), dtype=np.uint8)
        newlines = np.flatnonzero(text[:n] == _NEWLINE)
        starts = np.concatenate(([0], newlines + 1))
        ends = np.concatenate((newlines, [n]))
        if block.endswith(b"\n"):
            starts, ends = starts[:-1], ends[:-1]
        first = self.lines_before + 1
        self.lines_before += len(starts)
        starts = _skip_blanks(block, text, starts, ends)
        keep = (starts < ends) & (text[starts] != _HASH_SIGN)
        starts = starts[keep]
        fields = np.lib.stride_tricks.sliding_window_view(text, digits)[starts]
        ended = _FIELD_END[text[starts + digits]]
        decoded = _fromhex(fields, digits) if ended.all() else None
        if decoded is None:
            bad = int(np.flatnonzero(~ended | (_HEX_VALUE[fields] == 255).any(axis=1))[0])
            line = first + int(np.flatnonzero(keep)[bad])
            self._fail(line, block[starts[bad] :])
        self.parts.append(decoded)

    def _fail(self, line: int, rest: bytes) -> None:
        field = rest.split(b"\n", 1)[0].strip().replace(b"\t", b" ").split(b" ", 1)[0]
        field = field.split(b",", 1)[0] or rest.split(b"\n", 1)[0].strip()
        shown = field[:80].decode("utf-8", "replace") + ("..." if len(field) > 80 else "")
        kind = f" {self.what}" if self.what else ""
        raise HashListError(
            f"{self.source}:{line}: {shown!r} is not a {self.digits}-digit hex{kind}"
        )

    def result(self) -> np.ndarray:
        if len(self.parts) == 1:
            return self.parts[0]
        return np.concatenate(self.parts or [np.empty((0, self.digits // 2), dtype=np.uint8)])


def _skip_blanks(block: bytes, text: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """Line starts moved past leading spaces and tabs (a blank line's start reaches its end)."""
    starts = starts.copy()
    for _ in range(8):
        lead = np.flatnonzero(_BLANK[text[starts]] & (starts < ends))
        if not lead.size:
            return starts
        starts[lead] += 1
    for i in np.flatnonzero(_BLANK[text[starts]] & (starts < ends)):
        line = block[starts[i] : ends[i]]
        starts[i] += len(line) - len(line.lstrip())
    return starts


def _fromhex(fields: np.ndarray, digits: int) -> np.ndarray | None:
    """(n, digits) ASCII hex digits -> (n, digits // 2) bytes; None if any is not hex."""
    try:
        raw = bytes.fromhex(fields.tobytes().decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if len(raw) * 2 != fields.size:  # fromhex skips spaces between byte pairs
        return None
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, digits // 2)


def hexes_to_digests(hexes: Sequence[str | None], digits: int) -> tuple[np.ndarray, np.ndarray]:
    """Query hashes -> ((k, digits // 2) uint8 digests, (n,) bool: which queries had one).

    None and "" are no hash; anything else must be `digits` hex digits (else ValueError: a
    query the stage computed itself, so a bad one is a bug, not a non-match).
    """
    present = np.fromiter((bool(h) for h in hexes), dtype=bool, count=len(hexes))
    given = [h for h in hexes if h]
    if any(len(h) != digits for h in given):
        bad = next(h for h in given if len(h) != digits)
        raise ValueError(f"{bad!r} is not a {digits}-digit hex hash")
    try:
        raw = bytes.fromhex("".join(given))
    except ValueError:
        raw = b""
    if len(raw) * 2 != len(given) * digits:
        bad = next(h for h in given if not _is_hex(h))
        raise ValueError(f"{bad!r} is not a {digits}-digit hex hash")
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, digits // 2), present


def _is_hex(text: str) -> bool:
    try:
        return len(bytes.fromhex(text)) * 2 == len(text)
    except ValueError:
        return False


# -- exact lists --------------------------------------------------------------------------


class ExactHashList:
    """A set of digests of one kind (md5, sha1 or sha256) with O(1) expected lookups."""

    def __init__(
        self, kind: str, digests: np.ndarray, sources: Sequence[tuple[str, int]] = ()
    ) -> None:
        """`digests`: (n, bytes) uint8, duplicates allowed; `sources`: (name, count) for logs."""
        if kind not in HASH_KINDS:
            raise ValueError(f"unknown hash kind {kind!r}: expected one of {sorted(HASH_KINDS)}")
        self.kind, self.digits = kind, HASH_KINDS[kind]
        self.sources = tuple(sources)
        digests = np.asarray(digests, dtype=np.uint8).reshape(-1, self.digits // 2)
        self._prefix, self._rest = _sorted_unique(*_sorted_words(digests))
        self._bits = max(1, math.ceil(math.log2(max(len(self._prefix), 1))) - 2)
        buckets = np.bincount(self._prefix >> np.uint64(64 - self._bits), minlength=1 << self._bits)
        offsets = np.concatenate(([0], np.cumsum(buckets)))
        self._offsets = offsets.astype(np.uint32 if len(self._prefix) < 2**32 else np.int64)

    @classmethod
    def from_sources(cls, kind: str, sources: Iterable[Source]) -> ExactHashList:
        """Merge every source's hex lines (see the module docstring for the format)."""
        digits = HASH_KINDS.get(kind)
        if digits is None:
            raise ValueError(f"unknown hash kind {kind!r}: expected one of {sorted(HASH_KINDS)}")
        digests, counts = read_sources(sources, digits=digits, what=kind)
        return cls(kind, digests, counts)

    def __len__(self) -> int:
        return len(self._prefix)

    @property
    def nbytes(self) -> int:
        """Memory held by the table's arrays."""
        return self._prefix.nbytes + self._rest.nbytes + self._offsets.nbytes

    def contains(self, hex_hash: str) -> bool:
        """Whether this hex digest (any case) is listed."""
        return bool(self.matches([hex_hash])[0])

    def __contains__(self, hex_hash: str) -> bool:
        return self.contains(hex_hash)

    def matches(self, hexes: Sequence[str | None]) -> np.ndarray:
        """(n,) bool: which hex digests are listed; None or "" never match."""
        digests, present = hexes_to_digests(hexes, self.digits)
        found = np.zeros(len(present), dtype=bool)
        found[present] = self.matches_digests(digests)
        return found

    def matches_digests(self, digests: np.ndarray) -> np.ndarray:
        """(n,) bool for (n, bytes) uint8 digests."""
        words = _to_words(np.asarray(digests, dtype=np.uint8).reshape(-1, self.digits // 2))
        query, rest = words[:, 0], words[:, 1:]
        bucket = (query >> np.uint64(64 - self._bits)).astype(np.int64)
        position = self._offsets[bucket].astype(np.int64)
        end = self._offsets[bucket + 1].astype(np.int64)
        found = np.zeros(len(words), dtype=bool)
        active = np.flatnonzero(position < end)
        while active.size:  # entries of a bucket, in order, until one is >= the query
            at = position[active]
            listed = self._prefix[at]
            same = np.flatnonzero(listed == query[active])
            hit = (self._rest[at[same]] == rest[active[same]]).all(axis=1)
            found[active[same[hit]]] = True
            go_on = listed < query[active]
            go_on[same[~hit]] = True  # same first word, other digest: look further
            active = active[go_on]
            position[active] += 1
            active = active[position[active] < end[active]]
        return found


def _to_words(digests: np.ndarray) -> np.ndarray:
    """(n, bytes) uint8 -> (n, ceil(bytes / 8)) uint64, big-endian so words sort as bytes do."""
    n, width = digests.shape
    words = -(-width // 8)
    padded = np.zeros((n, words * 8), dtype=np.uint8)
    padded[:, :width] = digests
    return padded.view(">u8").astype(np.uint64)


def _sorted_words(digests: np.ndarray, rows: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """(first words, other words) of the digests, sorted by first word.

    Converted `rows` at a time: the peak is the digests plus ~1.5x the table, not 3x.
    """
    prefix = np.ascontiguousarray(digests[:, :8]).view(">u8").ravel().astype(np.uint64)
    order = np.argsort(prefix)
    prefix = prefix[order]
    rest = np.empty((len(digests), -(-digests.shape[1] // 8) - 1), dtype=np.uint64)
    for start in range(0, len(digests), rows):
        rest[start : start + rows] = _to_words(digests[order[start : start + rows], 8:])
    return prefix, rest


def _sorted_unique(prefix: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by first word made fully lexicographic, each row once.

    Only rows whose first word is not unique (duplicates, or rarely other digests sharing
    the first 8 bytes) need sorting on the other words.
    """
    tie = prefix[1:] == prefix[:-1]
    if not tie.any():
        return prefix, rest
    tied = np.zeros(len(prefix), dtype=bool)
    tied[1:] |= tie
    tied[:-1] |= tie
    rows = np.flatnonzero(tied)
    order = rows[np.lexsort((*rest[rows].T[::-1], prefix[rows]))]
    prefix[rows], rest[rows] = prefix[order], rest[order]
    same = np.flatnonzero(prefix[1:] == prefix[:-1])
    same = same[(rest[same + 1] == rest[same]).all(axis=1)] + 1
    keep = np.ones(len(prefix), dtype=bool)
    keep[same] = False
    return prefix[keep], rest[keep]


def load_exact(kind: str, sources: Iterable[Source]) -> ExactHashList:
    """An exact list of `kind` (md5, sha1, sha256) merged from (name, lines) sources."""
    return ExactHashList.from_sources(kind, sources)


# -- PDQ ----------------------------------------------------------------------------------

_CHUNKS = 16  # 16-bit chunks of the 256-bit hash
_CHUNK_VALUES = 1 << 16
_MAX_RADIUS = 2  # larger per-chunk radii (max_distance >= 48) use brute force
_CANDIDATES_PER_BATCH = 1 << 18  # small batches stay in cache: faster


def _flips(radius: int) -> np.ndarray:
    """Every 16-bit mask with at most `radius` bits set, 0 first."""
    masks = [
        sum(1 << b for b in bits) for r in range(radius + 1) for bits in combinations(range(16), r)
    ]
    return np.array(masks, dtype=np.uint16)


_FLIPS = [_flips(r) for r in range(_MAX_RADIUS + 1)]


def _popcount(words: np.ndarray) -> np.ndarray:
    """Bits set per element of a uint64 array (uint8 result)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)  # numpy < 2
    return table[words.view(np.uint8)].reshape(*words.shape, 8).sum(axis=-1, dtype=np.uint8)


def _distances(listed: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distances (int32) between rows of two (n, 4) uint64 arrays."""
    counts = _popcount(listed ^ query)
    return counts.sum(axis=1, dtype=np.int32)


class PdqIndex:
    """Exact nearest-neighbour search over PDQ hashes (Hamming distance, multi-index hashing)."""

    def __init__(self, hashes: np.ndarray, sources: Sequence[tuple[str, int]] = ()) -> None:
        """`hashes`: (n, 32) uint8 PDQ bytes (the hex's bytes); exact duplicates are kept once.

        `sources`: (name, rows) for consecutive row ranges, for :meth:`source_of`.
        """
        hashes = np.ascontiguousarray(np.asarray(hashes, dtype=np.uint8).reshape(-1, 32))
        _, first = np.unique(hashes.view("V32").ravel(), return_index=True)
        keep = np.sort(first)
        self.sources = tuple(sources)
        counts = [count for _, count in self.sources]
        if self.sources and sum(counts) != len(hashes):
            raise ValueError(f"sources count {sum(counts)} rows, hashes has {len(hashes)}")
        rows = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        self._source_of_row = rows[keep] if self.sources else rows
        self._hashes = hashes[keep]
        self._words = self._hashes.view(np.uint64)
        self._head = np.ascontiguousarray(self._words[:, :2])  # first 128 bits, for the filter
        self._perm, self._offsets = _chunk_index(self._hashes.view(np.uint16))

    @classmethod
    def from_sources(cls, sources: Iterable[Source]) -> PdqIndex:
        """Merge every source's PDQ hex lines (64 hex digits; see the module docstring)."""
        hashes, counts = read_sources(sources, digits=PDQ_DIGITS, what="PDQ hash")
        return cls(hashes, counts)

    def __len__(self) -> int:
        return len(self._words)

    @property
    def nbytes(self) -> int:
        """Memory held by the hashes and the 16 inverted indexes."""
        arrays = (self._hashes, self._head, self._perm, self._offsets, self._source_of_row)
        return sum(a.nbytes for a in arrays)

    def hex_at(self, index: int) -> str:
        """The listed PDQ hash at `index` (as query results give it), 64 lowercase hex."""
        return self._hashes[index].tobytes().hex()

    def source_of(self, index: int) -> str:
        """The name of the source the entry at `index` was first read from ("" if unknown)."""
        if not self.sources:
            return ""
        return self.sources[int(self._source_of_row[index])][0]

    def query_many(
        self,
        hexes: Sequence[str | None],
        max_distance: int = PDQ_MAX_DISTANCE,
        *,
        qualities: Sequence[int] | np.ndarray | None = None,
        min_quality: int = PDQ_MIN_QUALITY,
    ) -> tuple[np.ndarray, np.ndarray]:
        """For each query, the nearest entry within `max_distance`: (index int64, distance int32).

        -1 and -1 where none is that close, the query is None/"" or (when `qualities` is
        given) its PDQ quality is under `min_quality`. Ties go to the lowest index.
        """
        digests, present = hexes_to_digests(hexes, PDQ_DIGITS)
        if qualities is not None:
            good = pdq_quality_ok(qualities, min_quality)[present]
            digests, present[present] = digests[good], good
        index = np.full(len(present), -1, dtype=np.int64)
        distance = np.full(len(present), -1, dtype=np.int32)
        index[present], distance[present] = self.query_digests(digests, max_distance)
        return index, distance

    def query(self, hex_hash: str, max_distance: int = PDQ_MAX_DISTANCE) -> tuple[int, int] | None:
        """(index, distance) of the nearest entry within `max_distance`, or None."""
        index, distance = self.query_many([hex_hash], max_distance)
        return (int(index[0]), int(distance[0])) if index[0] >= 0 else None

    def query_digests(
        self, digests: np.ndarray, max_distance: int = PDQ_MAX_DISTANCE
    ) -> tuple[np.ndarray, np.ndarray]:
        """query_many for (n, 32) uint8 PDQ bytes."""
        queries = np.ascontiguousarray(np.asarray(digests, dtype=np.uint8).reshape(-1, 32))
        radius = max_distance // _CHUNKS
        if max_distance < 0 or radius > _MAX_RADIUS:
            return self.brute_force_digests(queries, max_distance)
        index = np.full(len(queries), -1, dtype=np.int64)
        distance = np.full(len(queries), -1, dtype=np.int32)
        if not len(self) or not len(queries):
            return index, distance
        chunks, flips = _probe_plan(max_distance)
        expected = len(flips) * len(self) // _CHUNK_VALUES + 1  # candidates per query
        step = min(4096, max(1, _CANDIDATES_PER_BATCH // expected))
        for start in range(0, len(queries), step):
            batch = queries[start : start + step]
            low, high = self._buckets(batch, chunks, flips)
            for part in _parts(high - low, _CANDIDATES_PER_BATCH):
                found = self._verify(batch[part], low[part], high[part], max_distance)
                index[start + part], distance[start + part] = found
        return index, distance

    def _buckets(self, queries: np.ndarray, chunks: np.ndarray, flips: np.ndarray):
        """(queries, probes) bounds in `_perm` of every bucket to probe."""
        keys = queries.view(np.uint16)[:, chunks] ^ flips
        cells = keys.astype(np.int64) + chunks * _CHUNK_VALUES
        return self._offsets[cells].astype(np.int64), self._offsets[cells + 1].astype(np.int64)

    def _verify(self, queries: np.ndarray, low: np.ndarray, high: np.ndarray, limit: int):
        """Expand the buckets to candidate entries, measure them, keep each query's nearest.

        Candidates are first measured on their first 128 bits (a 16-byte gather), and only
        those within `limit` there on all 256: random entries are ~64 bits away in 128.
        """
        sizes = high - low
        per_query = sizes.sum(axis=1)
        sizes, low = sizes.ravel(), low.ravel()
        filled = np.flatnonzero(sizes)
        sizes, low = sizes[filled], low[filled]
        positions = np.repeat(low - (np.cumsum(sizes) - sizes), sizes)
        positions += np.arange(len(positions))
        entries = self._perm[positions]
        words = queries.view(np.uint64)
        head = np.take(self._head, entries, axis=0)
        head ^= np.repeat(words[:, :2], per_query, axis=0)
        counts = _popcount(head)
        partial = counts[:, 0] + counts[:, 1]  # uint8: at most 128
        close = np.flatnonzero(partial <= limit)
        owners = np.searchsorted(np.cumsum(per_query), close, side="right")
        entries = entries[close]
        tail = np.take(self._words, entries, axis=0)[:, 2:] ^ words[owners, 2:]
        found = partial[close].astype(np.int32) + _popcount(tail).sum(axis=1, dtype=np.int32)
        near = found <= limit
        return _nearest(len(queries), owners[near], entries[near], found[near])

    def brute_force(
        self, hexes: Sequence[str | None], max_distance: int = PDQ_MAX_DISTANCE
    ) -> tuple[np.ndarray, np.ndarray]:
        """query_many by comparing every query with every entry (the reference; slow)."""
        digests, present = hexes_to_digests(hexes, PDQ_DIGITS)
        index = np.full(len(present), -1, dtype=np.int64)
        distance = np.full(len(present), -1, dtype=np.int32)
        index[present], distance[present] = self.brute_force_digests(digests, max_distance)
        return index, distance

    def brute_force_digests(
        self, digests: np.ndarray, max_distance: int = PDQ_MAX_DISTANCE
    ) -> tuple[np.ndarray, np.ndarray]:
        """brute_force for (n, 32) uint8 PDQ bytes."""
        queries = np.ascontiguousarray(np.asarray(digests, dtype=np.uint8).reshape(-1, 32))
        index = np.full(len(queries), -1, dtype=np.int64)
        distance = np.full(len(queries), -1, dtype=np.int32)
        if not len(self):
            return index, distance
        for i, query in enumerate(queries.view(np.uint64)):
            found = _distances(self._words, query)
            best = int(np.argmin(found))
            if found[best] <= max_distance:
                index[i], distance[i] = best, found[best]
        return index, distance


def _chunk_index(chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per chunk, the entries sorted by chunk value; offsets[c * 65536 + v] starts bucket v."""
    n = len(chunks)
    position = np.int32 if _CHUNKS * n < 2**31 else np.int64
    perm = np.empty(_CHUNKS * n, dtype=position)
    counts = np.empty((_CHUNKS, _CHUNK_VALUES), dtype=np.int64)
    for c in range(_CHUNKS):
        values = chunks[:, c]
        perm[c * n : (c + 1) * n] = np.argsort(values, kind="stable")
        counts[c] = np.bincount(values, minlength=_CHUNK_VALUES)
    offsets = np.concatenate(([0], np.cumsum(counts.ravel()))).astype(position)
    return perm, offsets


def _probe_plan(max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunk, flip mask) of every bucket to probe for `max_distance` (see module docstring)."""
    radius, spare = divmod(max_distance, _CHUNKS)
    chunks, flips = [], []
    for c in range(_CHUNKS):
        r = radius if c <= spare else radius - 1
        if r >= 0:
            chunks.append(np.full(len(_FLIPS[r]), c, dtype=np.int64))
            flips.append(_FLIPS[r])
    return np.concatenate(chunks), np.concatenate(flips)


def _parts(sizes: np.ndarray, limit: int) -> list[np.ndarray]:
    """Consecutive query ranges with about `limit` candidates each (at least one query)."""
    per_query = sizes.sum(axis=1)
    if per_query.sum() <= limit:
        return [np.arange(len(per_query))]
    group = np.cumsum(per_query) // limit
    cuts = np.flatnonzero(np.diff(group)) + 1
    return np.split(np.arange(len(per_query)), cuts)


def _nearest(n: int, owners: np.ndarray, entries: np.ndarray, found: np.ndarray):
    """Per query 0..n-1, the closest (then lowest) entry among (owner, entry, distance)."""
    index = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, -1, dtype=np.int32)
    order = np.lexsort((entries, found, owners))
    owners, entries, found = owners[order], entries[order], found[order]
    first = np.concatenate(([True], owners[1:] != owners[:-1])) if len(owners) else owners
    index[owners[first]] = entries[first]
    distance[owners[first]] = found[first]
    return index, distance


def pdq_quality_ok(qualities: Sequence[int] | np.ndarray, min_quality: int = PDQ_MIN_QUALITY):
    """(n,) bool: which PDQ qualities are high enough to match (None counts as too low)."""
    values = [-1 if q is None else q for q in qualities]
    return np.asarray(values, dtype=np.int64) >= min_quality


def load_pdq(sources: Iterable[Source]) -> PdqIndex:
    """A PDQ index merged from (name, lines) sources of 64-hex-digit hashes."""
    return PdqIndex.from_sources(sources)
