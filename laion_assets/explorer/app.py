"""The audit explorer: a small Starlette app over one release version and its kNN index.

Pages (`pages.py`): `/` (search by text or "more like this", filters, a grid of thumbnails, a
detail panel with the provenance trace and a removal request) and `/audit` (the source
shards' safety exclusions by rule, `?shard=` for one). JSON: `/api/search`, `/api/trace`,
`/api/removal`, and clip-retrieval's back API (`/indices-list`, `/knn-service`,
`/metadata`). Safe by default:

- safe mode (on unless the viewer turns it off) hides rows whose `punsafe` is above the
  release's threshold (its policy at publish time);
- images excluded by a hash list are never listed nor served (`/image` answers 404 for them);
- images excluded for NSFW are blurred in the audit view until clicked;
- a removal request writes a takedown ledger entry only when the server was started with an
  operator token and the request carries it; otherwise it is refused (403).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from laion_assets.explorer.pages import NEVER_SHOWN_RULES, audit_page, home_page
from laion_assets.pipeline.core.manifests import (
    DownloadedImagesManifest,
    ExtractedPairsManifest,
    SafetyFilteredPairsManifest,
    read_current,
)
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.formats.webdataset import image_members, url_key
from laion_assets.pipeline.release.knn import KnnIndex, load_index
from laion_assets.pipeline.release.provenance import ProvenanceError, trace
from laion_assets.pipeline.release.publish import latest_release, read_release
from laion_assets.pipeline.safety.takedowns import append, new_takedown

DEFAULT_PUNSAFE = 0.45
DATA_COLUMNS = ("URL", "TEXT", "WIDTH", "HEIGHT", "similarity", "punsafe", "pwatermark",
                "LANGUAGE", "hash")
MAX_K = 200
MAX_UPLOAD_BYTES = 20 << 20
PARTS_CACHED = 8  # release parts held in memory (the oldest read is dropped first)


def parse_release(value: str | None) -> tuple[str, int | None]:
    """`NAME` or `NAME@vN` (also `NAME@N`) -> (name, version or None for the latest)."""
    if not value:
        return "laion-assets", None
    name, _, version = value.partition("@")
    if not version:
        return name, None
    number = version[1:] if version.lower().startswith("v") else version
    if not number.isdigit():
        raise ValueError(f"release {value!r}: expected NAME or NAME@vN")
    return name, int(number)


@dataclass(frozen=True)
class Filters:
    """Browse filters applied to the nearest candidates (None: no bound)."""

    language: str | None = None
    max_punsafe: float | None = None
    max_pwatermark: float | None = None
    min_similarity: float | None = None

    @classmethod
    def from_query(cls, params: Any) -> Filters:
        """From query parameters; ValueError names a bound that is not a number."""
        bounds = {}
        for name in ("max_punsafe", "max_pwatermark", "min_similarity"):
            value = (params.get(name) or "").strip()
            try:
                bounds[name] = float(value) if value else None
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a number") from None
        return cls(language=(params.get("language") or "").strip() or None, **bounds)

    @property
    def active(self) -> bool:
        return any(v is not None for v in self.__dict__.values())

    def keep(self, row: dict) -> bool:
        def above(value, bound):
            return bound is not None and value is not None and value > bound

        return not ((self.language and row["LANGUAGE"] != self.language)
                    or above(row["punsafe"], self.max_punsafe)
                    or above(row["pwatermark"], self.max_pwatermark)
                    or (self.min_similarity is not None
                        and (row["similarity"] or 0.0) < self.min_similarity))


@dataclass
class Explorer:
    """The state the routes share: the release, its index, the text tower (loaded lazily)."""

    store: DatasetStore
    name: str
    version: int | None = None
    operator_token: str | None = None
    encoder: Any = None  # anything with encode_texts(list[str]) -> np.ndarray
    dagster_url: str | None = None  # the detail panel links run ids to this Dagster UI
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        release = (read_release(self.store, self.name, self.version) if self.version
                   else latest_release(self.store, self.name))
        self.release = release
        self.version = release.version
        self.index: KnnIndex = load_index(self.store, self.name, release.version)
        self.model = release.models[0] if release.models else {}
        self.punsafe_threshold = float(release.policy_at_publish.get("punsafe", DEFAULT_PUNSAFE)
                                       or DEFAULT_PUNSAFE)
        self.exclusions = self._read_exclusions()
        self.hidden_keys = {(e["shard"], url_key(e["url"])) for e in self.exclusions
                            if e["rule"] in NEVER_SHOWN_RULES}
        self._tar_members: dict[str, dict[str, tuple[int, int]]] = {}
        self._parts: dict[int, tuple[dict[str, list], list[str]]] = {}

    # -- model ------------------------------------------------------------------------

    @property
    def untrained(self) -> bool:
        return self.model.get("pretrained") in (None, "none") or \
            self.model.get("weights_sha256") == "untrained"

    def model_label(self) -> str:
        m = self.model
        return (f"{m.get('model', '?')} / pretrained={m.get('pretrained', '?')} "
                f"(weights sha256 {m.get('weights_sha256', '?')})")

    def _clip(self) -> Any:
        """The release's CLIP model (its identity from the release manifest), loaded once;
        call with the lock held."""
        if self.encoder is None:
            from laion_assets.pipeline.scoring.clip import ClipModelSpec, load_clip

            pretrained = None if self.untrained else self.model.get("pretrained")
            self.encoder = load_clip(ClipModelSpec(
                model=self.model.get("model", "ViT-B-32"), pretrained=pretrained,
                device="cpu", precision="fp32", num_workers=0))
        return self.encoder

    def encode_text(self, text: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._clip().encode_texts([text]), dtype=np.float32)[0]

    def encode_image(self, data: bytes) -> np.ndarray:
        """The image tower's embedding of image bytes; ValueError when they do not decode."""
        from laion_assets.pipeline.scoring.clip import decode_image

        with self._lock:
            clip = self._clip()
            pixels = decode_image(data, clip.preprocess)
            if pixels is None:
                raise ValueError(f"the uploaded {len(data)} bytes are not an image that decodes")
            return np.asarray(clip.encode_images(pixels.unsqueeze(0)), dtype=np.float32)[0]

    # -- rows -------------------------------------------------------------------------

    def _part(self, part: int) -> tuple[dict[str, list], list[str]]:
        if part in self._parts:
            return self._parts[part]
        if len(self._parts) >= PARTS_CACHED:
            self._parts.pop(next(iter(self._parts)))
        folder = self.release.folder
        data = self.store.read_parquet(f"{folder}/data/part-{part:05d}.parquet",
                                       columns=list(DATA_COLUMNS)).to_pydict()
        shards = self.store.read_parquet(f"{folder}/provenance/part-{part:05d}.parquet",
                                         columns=["shard"]).column("shard").to_pylist()
        self._parts[part] = (data, shards)
        return data, shards

    def row(self, row: int) -> dict:
        part, part_row = int(self.index._part[row]), int(self.index._part_row[row])
        data, shards = self._part(part)
        out = {c: data[c][part_row] for c in DATA_COLUMNS}
        out.update(row=row, shard=shards[part_row], key=url_key(out["URL"]))
        out["hash"] = str(out["hash"])  # 64-bit: JSON numbers lose it in browsers
        return out

    def safe(self, row: dict) -> bool:
        return row.get("punsafe") is None or row["punsafe"] <= self.punsafe_threshold

    def search(self, vector: np.ndarray, k: int, safe: bool,
               filters: Filters = Filters()) -> list[dict]:
        """The `k` nearest rows that pass safe mode and `filters`, among the nearest few
        hundred (filters narrow the neighbourhood; they do not scan the release)."""
        found = []
        wanted = max(k * 10, 200) if filters.active else max(k * 4, k + 20)
        for hit in self.index.search(vector, min(len(self.index), wanted)):
            row = self.row(hit.row)
            if (safe and not self.safe(row)) or not filters.keep(row):
                continue
            if (row["shard"], row["key"]) in self.hidden_keys:
                continue
            found.append({**row, "score": round(hit.similarity, 6)})
            if len(found) >= k:
                break
        return found

    # -- exclusions and images ----------------------------------------------------------

    def _read_exclusions(self) -> list[dict]:
        out = []
        for source in self.release.source_shards:
            safety = read_current(self.store, SafetyFilteredPairsManifest, source.shard)
            extracted = read_current(self.store, ExtractedPairsManifest, source.shard)
            if safety is None or extracted is None:
                continue
            table = self.store.read_parquet(safety.exclusions_file,
                                            columns=["pair_id", "rule", "detail"]).to_pylist()
            pairs = self.store.read_parquet(extracted.file,
                                            columns=["pair_id", "url", "text"]).to_pylist()
            by_id = {p["pair_id"]: p for p in pairs}
            for row in table:
                pair = by_id.get(row["pair_id"], {})
                out.append({"shard": source.shard, "pair_id": str(row["pair_id"]),
                            "rule": row["rule"], "detail": row["detail"],
                            "url": pair.get("url", ""), "text": pair.get("text", "")})
        return out

    def exclusions_by_rule(self, shard: str | None = None) -> dict[str, list[dict]]:
        """Exclusions by rule (of one shard, or all); never-shown rules keep only their count."""
        grouped: dict[str, list[dict]] = {}
        for e in self.exclusions:
            if shard and e["shard"] != shard:
                continue
            grouped.setdefault(e["rule"], [])
            if e["rule"] not in NEVER_SHOWN_RULES:
                grouped[e["rule"]].append({**e, "key": url_key(e["url"])})
        return grouped

    def rule_counts(self, shard: str | None = None) -> Counter:
        return Counter(e["rule"] for e in self.exclusions if not shard or e["shard"] == shard)

    def has_image(self, shard: str, key: str) -> bool:
        """Whether the shard's stored tars hold an image under `key` (not a hash-listed one)."""
        manifest = read_current(self.store, DownloadedImagesManifest, shard)
        return (shard, key) not in self.hidden_keys and manifest is not None and any(
            key in self._members(tar) for tar in manifest.tars)

    def image(self, shard: str, key: str) -> bytes | None:
        """The stored resized image of `key` in `shard`, or None (never a hash-listed one)."""
        if (shard, key) in self.hidden_keys:
            return None
        manifest = read_current(self.store, DownloadedImagesManifest, shard)
        if manifest is None:
            return None
        for tar in manifest.tars:
            members = self._members(tar)
            if key in members:
                offset, size = members[key]
                with self.store.open(tar) as handle:
                    handle.seek(offset)
                    return handle.read(size)
        return None

    def _members(self, tar: str) -> dict[str, tuple[int, int]]:
        """Image members of a tar by key: (data offset, size), read once per tar."""
        if tar not in self._tar_members:
            with self.store.open(tar) as handle:
                self._tar_members[tar] = image_members(handle)
        return self._tar_members[tar]

    # -- removal --------------------------------------------------------------------------

    def authorized(self, token: str | None) -> bool:
        return bool(self.operator_token) and token is not None and hmac.compare_digest(
            token.encode(), self.operator_token.encode())


# -- routes ----------------------------------------------------------------------------------


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value, default=str), status_code=status,
                    media_type="application/json")


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.lower() not in ("0", "false", "off", "no")


def build_app(explorer: Explorer) -> Starlette:
    ex = explorer

    async def api_search(request: Request) -> Response:
        """`?q=TEXT` (the text tower), `?like=ROW` (that row's image embedding: "more like
        this") or POST image bytes (the image tower), with `k`, `safe` and `Filters`."""
        params = request.query_params
        q, like = params.get("q", "").strip(), params.get("like", "").strip()
        upload = await request.body() if request.method == "POST" else b""
        if len(upload) > MAX_UPLOAD_BYTES:
            return _json({"error": f"image over {MAX_UPLOAD_BYTES} bytes"}, 413)
        try:
            k = max(1, min(int(params.get("k", "24")), MAX_K))
            filters = Filters.from_query(params)
            if upload:
                vector, q = ex.encode_image(upload), f"uploaded image ({len(upload)} bytes)"
            elif like:
                vector = ex.index.vector(int(like))
            elif q:
                vector = ex.encode_text(q)
            else:
                return _json({"error": "give a text query (?q=...), a row (?like=N) or POST "
                              "an image"}, 400)
        except (ValueError, IndexError) as exc:
            return _json({"error": str(exc)}, 400)
        safe = _flag(params.get("safe"), True)
        results = ex.search(vector, k, safe, filters)
        return _json({"query": q or f"like row {like}", "safe": safe,
                      "filters": filters.__dict__, "punsafe_threshold": ex.punsafe_threshold,
                      "model": ex.model, "untrained": ex.untrained, "results": results})

    async def api_trace(request: Request) -> Response:
        value = request.query_params.get("hash", "")
        try:
            records = trace(ex.store, hash=value, scan_shards=True)
        except ProvenanceError as exc:
            return _json({"error": str(exc)}, 404)
        return _json(records)

    async def image(request: Request) -> Response:
        body = ex.image(request.path_params["shard"].replace("~", "/"),
                        request.path_params["key"])
        if body is None:
            return Response("not found", 404)
        return Response(body, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600"})

    async def removal(request: Request) -> Response:
        if not ex.operator_token:
            return _json({"error": "read-only: this explorer was started without an operator "
                          "token (LAION_ASSETS_OPERATOR_TOKEN or --operator-token)"}, 403)
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        if not ex.authorized(token):
            return _json({"error": "operator token missing or wrong"}, 403)
        body = await request.json()
        kind, value = body.get("kind", "url"), body.get("value", "")
        entry = new_takedown(kind, value, body.get("reason", ""),
                             requested_by=body.get("requested_by", "explorer"))
        path = append(ex.store, [entry])
        return _json({"id": entry.id, "kind": entry.kind, "value": entry.value,
                      "ledger_file": path})

    async def indices_list(request: Request) -> Response:
        return _json([ex.name])

    async def knn_service(request: Request) -> Response:
        body = await request.json()
        if body.get("indice_name", ex.name) != ex.name:
            return _json({"error": f"unknown indice_name {body.get('indice_name')!r}"}, 400)
        if body.get("modality", "image") != "image":
            return _json({"error": "only the image index is served (modality 'image')"}, 400)
        if body.get("embedding_input") is not None:
            vector = np.asarray(body["embedding_input"], dtype=np.float32)
        elif body.get("text"):
            vector = ex.encode_text(str(body["text"]))
        elif body.get("image"):  # base64, as clip-retrieval's ClipClient sends it
            try:
                vector = ex.encode_image(base64.b64decode(body["image"], validate=True))
            except (ValueError, binascii.Error) as exc:
                return _json({"error": f"image: {exc}"}, 400)
        else:
            return _json({"error": "give text, image (base64) or embedding_input"}, 400)
        k = max(1, min(int(body.get("num_images", 40)), MAX_K))
        rows = ex.search(vector, k, bool(body.get("use_safety_model", True)))
        return _json([_clip_result(r) for r in rows])

    async def metadata(request: Request) -> Response:
        body = await request.json()
        out = []
        for i in body.get("ids", []):
            i = int(i)
            if 0 <= i < len(ex.index):
                row = ex.row(i)
                if (row["shard"], row["key"]) not in ex.hidden_keys:
                    out.append({"id": i, "metadata": _clip_metadata(row)})
        return _json({"metadata": out})

    async def home(request: Request) -> Response:
        return HTMLResponse(home_page(ex, request.query_params.get("release")))

    async def audit(request: Request) -> Response:
        return HTMLResponse(audit_page(ex, request.query_params.get("rule"),
                                       request.query_params.get("shard")))

    return Starlette(routes=[
        Route("/", home), Route("/audit", audit),
        Route("/api/search", api_search, methods=["GET", "POST"]),
        Route("/api/trace", api_trace),
        Route("/api/removal", removal, methods=["POST"]),
        Route("/image/{shard}/{key}", image),
        Route("/indices-list", indices_list),
        Route("/knn-service", knn_service, methods=["POST"]),
        Route("/metadata", metadata, methods=["POST"]),
    ])


def _clip_metadata(row: dict) -> dict:
    return {"url": row["URL"], "caption": row["TEXT"], "hash": row["hash"],
            "width": row["WIDTH"], "height": row["HEIGHT"], "punsafe": row["punsafe"],
            "pwatermark": row["pwatermark"], "language": row["LANGUAGE"],
            "clip_similarity": row["similarity"]}


def _clip_result(row: dict) -> dict:
    """One result as clip-retrieval's back returns it: id, similarity to the query, metadata."""
    return {**_clip_metadata(row), "id": row["row"], "similarity": row["score"]}


def serve(explorer: Explorer, host: str = "127.0.0.1", port: int = 8765) -> None:
    import uvicorn

    uvicorn.run(build_app(explorer), host=host, port=port, log_level="info")


