"""Verify, hash and resize downloaded image bytes; hostile input only ever raises ImageRejected.

The content is verified by decoding it with Pillow, never trusted from a Content-Type. Pixel
limits are checked from the header before any pixel data is decoded. The first frame of an
animated image is used. Resizing follows img2dataset's resize modes and uses Pillow's LANCZOS
filter (with ``reducing_gap``: a box reduction first when shrinking by 3x or more).

PDQ bit order: ``pdqhash.compute`` returns bit 255 first. The 64-char hex string packs that
array most significant bit first, which is the reference implementation's ``Hash256::format``
(word 15 first, 4 hex digits per word), so hashes compare directly with ThreatExchange lists.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import math
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pdqhash
from PIL import Image, ImageOps, UnidentifiedImageError

Reason = Literal[
    "too_few_bytes",  # fewer than policy.min_bytes
    "not_an_image",  # Pillow cannot identify or decode it (HTML, SVG, corrupt data)
    "unsupported_image",  # identified, but no decoder or colour conversion for it
    "truncated_image",  # the data ends before the image does
    "decompression_bomb",  # too many pixels declared, or a PNG text chunk that inflates too far
    "too_small",  # shorter side below policy.min_side
    "aspect_ratio",  # beyond policy.max_aspect_ratio, or a resize output over max_pixels
]
REASONS: tuple[str, ...] = Reason.__args__
RESIZE_MODES = ("center_crop", "keep_ratio", "keep_ratio_largest", "border")
OUTPUT_FORMATS = {"jpeg": ("JPEG", "jpg"), "png": ("PNG", "png"), "webp": ("WEBP", "webp")}
# Formats browsers render as <img>, ICO left out (favicons; its decoded size can differ from
# its header). "JPEG" also opens camera JPEGs that Pillow reports as "MPO".
WEB_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF", "BMP")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
PDQ_DOWNSAMPLE = 512  # the reference hasher squashes larger images to 512x512 first
WHITE = (255, 255, 255)
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}

# Exceptions Pillow raises on hostile input; anything else is a bug and propagates.
_PILLOW_ERRORS = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    ValueError,
    SyntaxError,  # some plugins ("broken PNG file", "not a TIFF file")
    EOFError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,  # raised, not warned: see _pillow_guard
)
# EXIF parsing of hostile metadata may also raise these; the pixels are still usable.
_EXIF_ERRORS = (*_PILLOW_ERRORS, KeyError, IndexError, TypeError)


@dataclass(frozen=True)
class ImagePolicy:
    """What to accept and how to resize it (img2dataset's names for resize modes).

    resize_mode: ``center_crop`` scales the shorter side to ``resize`` then crops the centre
    square; ``keep_ratio`` scales the shorter side to ``resize``; ``keep_ratio_largest`` scales
    the longer side to ``resize``; ``border`` does the latter then pads to a white square.
    Smaller images are scaled up, as img2dataset does by default. ``jpeg_quality`` is also the
    WebP quality. ``formats`` lists the Pillow formats tried; None tries every plugin, EPS
    included, which runs Ghostscript on the bytes when it is installed.
    """

    min_bytes: int = 5_000
    min_side: int = 1
    max_pixels: int = 50_000_000
    max_aspect_ratio: float | None = None
    resize: int = 256
    resize_mode: str = "center_crop"
    output_format: str = "jpeg"
    jpeg_quality: int = 95
    formats: tuple[str, ...] | None = WEB_FORMATS

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {tuple(OUTPUT_FORMATS)}")
        if self.resize < 1 or self.min_side < 1 or self.max_pixels < 1:
            raise ValueError("resize, min_side and max_pixels must be positive")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        Image.init()
        unknown = set(self.formats or ()) - set(Image.OPEN)
        if unknown:
            raise ValueError(f"formats Pillow cannot open: {sorted(unknown)}")

    @property
    def extension(self) -> str:
        """File extension of the resized output ("jpg", "png", "webp")."""
        return OUTPUT_FORMATS[self.output_format][1]


@dataclass(frozen=True)
class ProcessedImage:
    """A verified image: facts about the original bytes and its resized re-encoding.

    width/height are the first frame's, as displayed (after EXIF orientation).
    """

    width: int
    height: int
    format: str
    frames: int
    sha256: str
    md5: str
    sha1: str
    pdq: str
    pdq_quality: int
    resized: bytes
    resized_width: int
    resized_height: int


class ImageRejected(Exception):
    """Bytes that do not become a dataset image; `reason` is one of REASONS."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: Reason = reason
        self.detail = detail

    def __reduce__(self):
        return type(self), (self.reason, self.detail)


DEFAULT_POLICY = ImagePolicy()


def process_image(data: bytes, policy: ImagePolicy = DEFAULT_POLICY) -> ProcessedImage:
    """Decode, check, hash (sha256, md5, sha1, PDQ) and resize `data`; raises ImageRejected."""
    if len(data) < policy.min_bytes:
        raise ImageRejected("too_few_bytes", f"{len(data)} < {policy.min_bytes}")
    with _pillow_guard():
        try:
            return _process(data, policy)
        except _PILLOW_ERRORS as exc:
            raise ImageRejected(_reason(exc, data), f"{type(exc).__name__}: {exc}"[:300]) from exc


def _process(data: bytes, policy: ImagePolicy) -> ProcessedImage:
    with Image.open(io.BytesIO(data), formats=policy.formats) as im:
        fmt, (width, height) = im.format or "UNKNOWN", im.size
        _check_header(im.size, policy)
        frames = getattr(im, "n_frames", 1)
        rgb, swapped = _decode_first_frame(im, policy)
    if swapped:
        width, height = height, width
    bits, quality = pdq_bits(rgb)
    resized = resize_image(rgb, policy.resize, policy.resize_mode)
    return ProcessedImage(
        width=width,
        height=height,
        format=fmt,
        frames=frames,
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
        sha1=hashlib.sha1(data).hexdigest(),
        pdq=pdq_bits_to_hex(bits),
        pdq_quality=quality,
        resized=encode_image(resized, policy),
        resized_width=resized.width,
        resized_height=resized.height,
    )


def _decode_first_frame(im: Image.Image, policy: ImagePolicy) -> tuple[Image.Image, bool]:
    """Frame 0, upright, in RGB; True when EXIF orientation swapped its sides."""
    im.seek(0)
    _draft(im, policy)
    declared = im.size
    im.load()
    if im.size != declared:  # e.g. an ICO whose embedded PNG is not the size its header says
        _check_header(im.size, policy)
    decoded = im.size
    rgb = to_rgb(_oriented(im))
    return rgb, rgb.size != decoded


def _draft(im: Image.Image, policy: ImagePolicy) -> None:
    """Let libjpeg decode a large JPEG at 1/2, 1/4 or 1/8 scale when no output needs more.

    The scale keeps both sides at least what PDQ (512) and the resize need, so the
    outputs barely change while decoding, hashing and resizing get several times cheaper.
    """
    if im.format not in ("JPEG", "MPO"):
        return
    width, height = im.size
    crop_like = policy.resize_mode in ("center_crop", "keep_ratio")
    need_resize = policy.resize / (min(width, height) if crop_like else max(width, height))
    need_pdq = max(min(1.0, PDQ_DOWNSAMPLE / width), min(1.0, PDQ_DOWNSAMPLE / height))
    scale = max(need_resize, need_pdq)
    if scale <= 0.5:
        im.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))


@contextmanager
def _pillow_guard() -> Iterator[None]:
    """Turn Pillow's DecompressionBombWarning into an error.

    Our own header check (policy.max_pixels) is the authoritative limit; Pillow's global
    MAX_IMAGE_PIXELS is left alone (a per-call change would race between threads), so it only
    backstops: images above it are rejected even if a policy allows more.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _check_header(size: tuple[int, int], policy: ImagePolicy) -> None:
    """Reject on the declared size alone, before any pixel is decoded."""
    width, height = size
    if width * height > policy.max_pixels:
        raise ImageRejected("decompression_bomb", f"{width}x{height} > {policy.max_pixels} pixels")
    if min(width, height) < policy.min_side:
        raise ImageRejected("too_small", f"{width}x{height}, min side {policy.min_side}")
    ratio = max(width, height) / min(width, height)
    if policy.max_aspect_ratio is not None and ratio > policy.max_aspect_ratio:
        raise ImageRejected("aspect_ratio", f"{width}x{height} > {policy.max_aspect_ratio}")
    out_w, out_h = resized_size(width, height, policy.resize, policy.resize_mode)
    if out_w * out_h > policy.max_pixels:
        raise ImageRejected("aspect_ratio", f"{width}x{height} resizes to {out_w}x{out_h}")


def _reason(exc: BaseException, data: bytes) -> Reason:
    """Map a Pillow exception to a rejection reason."""
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return "decompression_bomb"
    if isinstance(exc, UnidentifiedImageError):
        return "not_an_image"
    message = str(exc).lower()
    if "decompressed data too large" in message:  # PNG text/ICC chunk bombs
        return "decompression_bomb"
    if isinstance(exc, EOFError) or "truncated" in message or _riff_truncated(data):
        return "truncated_image"
    if "not available" in message or "not supported" in message or "ghostscript" in message:
        return "unsupported_image"
    return "not_an_image"


def _riff_truncated(data: bytes) -> bool:
    """True when a RIFF (WebP) container declares more bytes than there are."""
    if data[:4] != b"RIFF" or len(data) < 12:
        return False
    return int.from_bytes(data[4:8], "little") + 8 > len(data)


def _oriented(im: Image.Image) -> Image.Image:
    """The image as displayed: EXIF orientation applied (ignored when the EXIF is corrupt)."""
    with suppress(_EXIF_ERRORS):
        ImageOps.exif_transpose(im, in_place=True)
    return im


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB copy of `im`: 16-bit scaled to 8-bit, transparency composited onto white."""
    if im.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(im) >> 8).astype(np.uint8)).convert("RGB")
    if im.mode in ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")


def resized_size(width: int, height: int, size: int, mode: str) -> tuple[int, int]:
    """Output size of resize_image for a `width` x `height` input."""
    if mode == "center_crop" or mode == "border":
        return size, size
    scale = size / (min(width, height) if mode == "keep_ratio" else max(width, height))
    return _scaled(width, height, scale)


def _scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_image(im: Image.Image, size: int, mode: str) -> Image.Image:
    """Resize an RGB image per img2dataset's `mode` (see ImagePolicy).

    Shrinking averages areas (Pillow's BOX: what img2dataset's OpenCV INTER_AREA does, and
    ~4x cheaper than LANCZOS); enlarging is BICUBIC.
    """
    width, height = im.size
    if mode == "center_crop":
        # crop in source coordinates first, so a 1x50000 strip never becomes 256x12.8M pixels
        scale = size / min(width, height)
        scaled_w, scaled_h = _scaled(width, height, scale)
        left, top = (scaled_w - size) // 2 / scale, (scaled_h - size) // 2 / scale
        box = (left, top, left + size / scale, top + size / scale)
        return im.resize((size, size), _filter(scale), box=box)
    target = resized_size(width, height, size, mode if mode != "border" else "keep_ratio_largest")
    out = im.resize(target, _filter(target[0] / width))
    if mode != "border":
        return out
    canvas = Image.new("RGB", (size, size), WHITE)
    canvas.paste(out, ((size - out.width) // 2, (size - out.height) // 2))
    return canvas


def _filter(scale: float) -> Image.Resampling:
    return Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC


def tune_for_many_images() -> None:
    """Process set-up for decoding many images: keep freed memory for reuse.

    Each image touches megabytes of fresh memory; glibc's defaults return it to the kernel
    at once and take it back with page faults (~18% of decode time, measured). Raising the
    mmap and trim thresholds and Pillow's block cache keeps it in the process instead.
    """
    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 128 << 20)
    Image.core.set_blocks_max(16)


def encode_image(im: Image.Image, policy: ImagePolicy) -> bytes:
    """Encode `im` in the policy's output format (no metadata is carried over)."""
    buffer = io.BytesIO()
    pillow_format = OUTPUT_FORMATS[policy.output_format][0]
    if pillow_format == "PNG":
        im.save(buffer, pillow_format)
    else:
        im.save(buffer, pillow_format, quality=policy.jpeg_quality)
    return buffer.getvalue()


def pdq_bits(rgb: Image.Image) -> tuple[np.ndarray, int]:
    """PDQ bits (bit 255 first, as pdqhash returns them) and quality 0..100 of an RGB image.

    Like the reference pdqHash256FromFile, images over 512 pixels on a side are first
    resized to 512x512 (box filter here); pdqhash takes uint8 HxWx3 RGB.
    """
    if rgb.width > PDQ_DOWNSAMPLE or rgb.height > PDQ_DOWNSAMPLE:
        rgb = rgb.resize((PDQ_DOWNSAMPLE, PDQ_DOWNSAMPLE), Image.Resampling.BOX)
    bits, quality = pdqhash.compute(np.asarray(rgb, dtype=np.uint8))
    return bits.astype(np.uint8), int(quality)


def pdq_bits_to_hex(bits: np.ndarray) -> str:
    """64 hex chars; bits[0] (PDQ bit 255) is the most significant bit of the first char."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def pdq_hex_to_bits(hex_hash: str) -> np.ndarray:
    """Inverse of pdq_bits_to_hex: 256 uint8 0/1 values in pdqhash's order."""
    return np.unpackbits(np.frombuffer(_pdq_bytes(hex_hash), dtype=np.uint8))


def pdq_distance(a_hex: str, b_hex: str) -> int:
    """Hamming distance (0..256) between two PDQ hex hashes; <= 31 is the usual match."""
    a, b = _pdq_bytes(a_hex), _pdq_bytes(b_hex)
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def _pdq_bytes(hex_hash: str) -> bytes:
    if len(hex_hash) != 64:
        raise ValueError(f"a PDQ hash is 64 hex chars, got {len(hex_hash)}")
    return bytes.fromhex(hex_hash)
