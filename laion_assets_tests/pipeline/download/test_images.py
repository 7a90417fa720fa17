import hashlib
import io
import pickle
import resource
import struct
import time
import zlib

import numpy as np
import pdqhash
import pytest
from PIL import Image

from laion_assets.pipeline.download.images import (
    REASONS,
    ImagePolicy,
    ImageRejected,
    pdq_bits_to_hex,
    pdq_distance,
    pdq_hex_to_bits,
    process_image,
)

LOOSE = ImagePolicy(min_bytes=0)  # for small synthetic images
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _encode(im: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue()


def _photo(width: int = 400, height: int = 300, seed: int = 0) -> Image.Image:
    """1/f noise, the spectrum of natural photos: JPEGs well over 5 KB and a stable PDQ."""
    rng = np.random.default_rng(seed)
    falloff = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :])
    falloff[0, 0] = 1.0
    shape = (3, *falloff.shape)
    spectrum = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / falloff
    planes = np.fft.irfft2(spectrum, s=(height, width))
    planes -= planes.mean(axis=(1, 2), keepdims=True)
    planes /= planes.std(axis=(1, 2), keepdims=True)
    pixels = np.moveaxis(planes, 0, -1) * 50 + 128
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def _decoded(result) -> Image.Image:
    return Image.open(io.BytesIO(result.resized))


def _mean(result) -> np.ndarray:
    return np.asarray(_decoded(result).convert("RGB")).reshape(-1, 3).mean(axis=0)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _blank_png(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of zeros: tiny on disk, width*height bytes once decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def _rejected(data: bytes, policy: ImagePolicy = LOOSE) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        process_image(data, policy)
    assert caught.value.reason in REASONS
    return caught.value


def test_jpeg_hashes_sizes_and_output():
    data = _encode(_photo(), "JPEG", quality=90)
    result = process_image(data)
    assert (result.width, result.height, result.format, result.frames) == (400, 300, "JPEG", 1)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.md5 == hashlib.md5(data).hexdigest()
    assert result.sha1 == hashlib.sha1(data).hexdigest()
    assert len(result.pdq) == 64 and int(result.pdq, 16) >= 0
    assert 0 <= result.pdq_quality <= 100
    out = _decoded(result)
    assert (out.format, out.size) == ("JPEG", (256, 256))
    assert (result.resized_width, result.resized_height) == (256, 256)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP"])
def test_other_formats_are_detected_by_decoding(fmt):
    result = process_image(_encode(_photo(), fmt))
    assert (result.format, result.width, result.height) == (fmt, 400, 300)


def test_rgba_transparency_becomes_white():
    im = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (80, 80, 120, 120))
    out = np.asarray(_decoded(process_image(_encode(im, "PNG"), LOOSE)))
    assert out[0, 0].min() > 245  # transparent black shows as white
    assert out[128, 128][0] > 200 and out[128, 128][1:].max() < 60


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency_becomes_white(fmt):
    im = Image.new("P", (100, 100), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (40, 40, 60, 60))
    out = np.asarray(_decoded(process_image(_encode(im, fmt, transparency=0), LOOSE)))
    assert out[0, 0].min() > 245 and out[128, 128][0] > 200 and out[128, 128][1] < 60


def test_16_bit_png_is_scaled_not_clipped():
    im = Image.fromarray(np.full((64, 64), 32768, dtype=np.uint16))
    data = _encode(im, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    assert np.allclose(_mean(process_image(data, LOOSE)), 128, atol=4)  # clipping gives 255


def test_cmyk_jpeg():
    data = _encode(Image.new("CMYK", (100, 100), (0, 255, 255, 0)), "JPEG")
    result = process_image(data, LOOSE)
    assert result.format == "JPEG"
    red, green, blue = _mean(result)
    assert red > 230 and green < 30 and blue < 30


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_images_use_the_first_frame(fmt):
    frames = [Image.new("RGB", (100, 100), colour) for colour in (RED, GREEN, BLUE)]
    data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    result = process_image(data, LOOSE)
    assert (result.format, result.frames) == (fmt, 3)
    red, green, blue = _mean(result)
    assert red > 230 and green < 30 and blue < 30


def _sideways(width: int, height: int) -> bytes:
    """Left half red, right half blue, stored with EXIF orientation 6 (display rotated 90 CW)."""
    im = Image.new("RGB", (width, height), RED)
    im.paste(BLUE, (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(im, "JPEG", exif=exif)


@pytest.mark.parametrize("size", [(400, 200), (2400, 1200)])  # the second is decoded in draft
def test_exif_orientation_is_applied(size):
    policy = ImagePolicy(min_bytes=0, resize_mode="keep_ratio_largest")
    result = process_image(_sideways(*size), policy)
    assert (result.width, result.height) == (size[1], size[0])
    assert (result.resized_width, result.resized_height) == (128, 256)
    out = np.asarray(_decoded(result))
    assert out[10, 64][0] > 200 and out[10, 64][2] < 60  # the left (red) half is now on top
    assert out[-10, 64][2] > 200 and out[-10, 64][0] < 60


def test_large_jpeg_reports_original_size_and_a_close_pdq():
    big = _photo(1280, 1024)  # decoded at 1/2 scale: 640x512 still covers PDQ's 512
    drafted = process_image(_encode(big, "JPEG", quality=95))
    full = process_image(_encode(big, "BMP"))
    assert (drafted.width, drafted.height) == (full.width, full.height) == (1280, 1024)
    assert pdq_distance(drafted.pdq, full.pdq) < 16
    assert np.abs(_mean(drafted) - _mean(full)).max() < 3


def test_camera_mpo_jpegs_open_as_jpeg():
    frames = [_photo(1280, 1024, seed=seed) for seed in (1, 2)]
    data = _encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    result = process_image(data)
    assert (result.format, result.frames, result.width, result.height) == ("MPO", 2, 1280, 1024)


def test_too_few_bytes():
    assert _rejected(b"\xff\xd8" + b"x" * 100, ImagePolicy()).reason == "too_few_bytes"


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html><html><head><title>404</title></head><body>" + b"x" * 6000,
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100" '
        b'height="100"><rect width="100" height="100" fill="red"/></svg>' + b" " * 6000,
        bytes(range(256)) * 40,
    ],
    ids=["html", "svg", "noise"],
)
def test_not_an_image(data):
    assert _rejected(data, ImagePolicy()).reason == "not_an_image"


def test_formats_outside_the_policy_are_not_images():
    data = _encode(_photo(), "TIFF")
    assert _rejected(data).reason == "not_an_image"
    assert process_image(data, ImagePolicy(min_bytes=0, formats=None)).format == "TIFF"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_truncated_images(fmt):
    data = _encode(_photo(), fmt)
    assert _rejected(data[: len(data) // 2]).reason == "truncated_image"


def test_decompression_bomb_is_rejected_from_the_header():
    data = _blank_png(20_000, 20_000)  # 400 MB once decoded, ~50 KB here
    assert len(data) < 100_000
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    assert _rejected(data, ImagePolicy()).reason == "decompression_bomb"
    assert time.perf_counter() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100_000


def test_our_pixel_limit_applies_below_pillows():
    assert _rejected(_blank_png(8_000, 8_000), ImagePolicy()).reason == "decompression_bomb"
    small = ImagePolicy(min_bytes=0, max_pixels=100_000)
    assert _rejected(_encode(_photo(), "PNG"), small).reason == "decompression_bomb"


def test_pillow_warning_becomes_an_error_above_its_limit():
    # 100M pixels: over Pillow's 89.5M warning threshold, under its 179M error threshold
    generous = ImagePolicy(max_pixels=200_000_000)
    assert _rejected(_blank_png(10_000, 10_000), generous).reason == "decompression_bomb"


def test_png_text_chunk_bomb():
    png = _blank_png(64, 64)
    text = _chunk(b"zTXt", b"comment\x00\x00" + zlib.compress(b"\x00" * 5_000_000))
    bomb = png[:33] + text + png[33:]  # after the signature and IHDR
    assert _rejected(bomb).reason == "decompression_bomb"


def test_too_small():
    policy = ImagePolicy(min_bytes=0, min_side=100)
    assert _rejected(_encode(_photo(500, 50), "PNG"), policy).reason == "too_small"
    assert process_image(_encode(_photo(500, 100), "PNG"), policy).width == 500


def test_aspect_ratio():
    data = _encode(_photo(1000, 50), "PNG")
    assert _rejected(data, ImagePolicy(min_bytes=0, max_aspect_ratio=3.0)).reason == "aspect_ratio"
    assert process_image(data, LOOSE).resized_width == 256


def test_a_thin_strip_cannot_blow_up_the_resize():
    data = _blank_png(1, 40_000)
    keep_ratio = ImagePolicy(min_bytes=0, resize_mode="keep_ratio")  # would be 256 x 10M
    assert _rejected(data, keep_ratio).reason == "aspect_ratio"
    started = time.perf_counter()
    assert process_image(data, LOOSE).resized_height == 256  # center_crop crops first
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("mode", "size"),
    [
        ("center_crop", (256, 256)),
        ("keep_ratio", (341, 256)),
        ("keep_ratio_largest", (256, 192)),
        ("border", (256, 256)),
    ],
)
def test_resize_modes(mode, size):
    result = process_image(_encode(_photo(400, 300), "PNG"), ImagePolicy(resize_mode=mode))
    assert (result.resized_width, result.resized_height) == size == _decoded(result).size


def test_border_pads_with_white_and_small_images_are_scaled_up():
    policy = ImagePolicy(min_bytes=0, resize_mode="border")
    result = process_image(_encode(Image.new("RGB", (40, 20), RED), "PNG"), policy)
    out = np.asarray(_decoded(result))
    assert out.shape == (256, 256, 3)
    assert out[5, 128].min() > 245 and out[-5, 128].min() > 245  # bars above and below
    assert out[128, 128][0] > 230 and out[128, 128][1] < 30


@pytest.mark.parametrize(("output_format", "pillow_format"), [("png", "PNG"), ("webp", "WEBP")])
def test_output_formats(output_format, pillow_format):
    policy = ImagePolicy(output_format=output_format, resize=64)
    result = process_image(_encode(_photo(), "JPEG"), policy)
    assert _decoded(result).format == pillow_format and _decoded(result).size == (64, 64)
    assert policy.extension == output_format


def test_pdq_identical_similar_and_unrelated_images():
    photo = _photo(seed=1)
    data = _encode(photo, "JPEG", quality=90)
    first, again = process_image(data), process_image(bytes(data))
    assert first.pdq == again.pdq and pdq_distance(first.pdq, again.pdq) == 0
    smaller = photo.resize((300, 225), Image.Resampling.BILINEAR)
    copy = process_image(_encode(smaller, "JPEG", quality=60))
    other = process_image(_encode(_photo(seed=2), "JPEG", quality=90))
    assert pdq_distance(first.pdq, copy.pdq) < 31
    assert pdq_distance(first.pdq, other.pdq) > 80
    assert pdq_distance(first.pdq, other.pdq) == pdq_distance(other.pdq, first.pdq)
    assert first.pdq_quality > 50


def test_pdq_bit_order_matches_pdqhash():
    photo = _photo(seed=3)
    result = process_image(_encode(photo, "PNG"))
    bits, quality = pdqhash.compute(np.asarray(photo))
    assert pdq_hex_to_bits(result.pdq).tolist() == bits.tolist()
    assert result.pdq_quality == quality
    first_bit = np.zeros(256, dtype=np.uint8)
    first_bit[0] = 1  # pdqhash's first element is PDQ bit 255: the top bit of the hex string
    assert pdq_bits_to_hex(first_bit) == "8" + "0" * 63
    assert pdq_distance("f" * 64, "0" * 64) == 256
    with pytest.raises(ValueError):
        pdq_distance("abc", "0" * 64)


def test_mutated_images_only_raise_image_rejected():
    rng = np.random.default_rng(7)
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP"):
        data = _encode(_photo(120, 90), fmt)
        for attempt in range(60):
            mutated = bytearray(data)
            for position in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
                mutated[position] = int(rng.integers(0, 256))
            if attempt % 3 == 0:
                mutated = mutated[: int(rng.integers(len(data) // 2, len(data)))]
            try:
                process_image(bytes(mutated), LOOSE)
            except ImageRejected as rejected:
                assert rejected.reason in REASONS


def test_rejection_pickles_and_reasons_are_closed():
    rejected = pickle.loads(pickle.dumps(ImageRejected("too_small", "3x3")))
    assert (rejected.reason, rejected.detail) == ("too_small", "3x3")
    with pytest.raises(ValueError):
        ImageRejected("bad_reason")


@pytest.mark.parametrize(
    "params",
    [{"resize_mode": "fill"}, {"output_format": "gif"}, {"jpeg_quality": 0}, {"formats": ("XYZ",)}],
)
def test_policy_is_validated(params):
    with pytest.raises(ValueError):
        ImagePolicy(**params)
