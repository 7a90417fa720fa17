"""The sample images: gradients blended with seeded noise, encoded with Pillow."""

from __future__ import annotations

import io
import random

from PIL import Image

from laion_assets.sample.catalogue import ImageSpec


def _pixels(size: tuple[int, int], rng: random.Random, noise: float, block: int) -> Image.Image:
    """A colour gradient blended with seeded (block) noise, so images don't compress away."""
    w, h = size
    grad = Image.linear_gradient("L")
    base = Image.merge("RGB", (
        grad.resize((w, h)),
        grad.transpose(Image.Transpose.ROTATE_90).resize((w, h)),
        Image.new("L", (w, h), rng.randrange(256)),
    ))
    nw, nh = max(1, w // block), max(1, h // block)
    noise_img = Image.frombytes("RGB", (nw, nh), rng.randbytes(nw * nh * 3))
    return Image.blend(base, noise_img.resize((w, h), Image.Resampling.NEAREST), noise)


def render_image(spec: ImageSpec, seed: int) -> bytes:
    """Encode the image for ``spec``; bytes depend only on ``seed`` and the URL."""
    rng = random.Random(f"sample-drop:{seed}:image:{spec.url}")
    buf = io.BytesIO()
    if spec.fmt == "PIXEL":
        Image.new("P", (1, 1), 0).save(buf, "GIF", transparency=0)
        return buf.getvalue()
    block = spec.block or (4 if spec.fmt in ("PNG", "GIF", "AGIF") else 1)
    if spec.fmt == "AGIF":
        frames = [_pixels(spec.size, rng, spec.noise, block).quantize(64) for _ in range(4)]
        frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=120,
                       loop=0)
        return buf.getvalue()
    img = _pixels(spec.size, rng, spec.noise, block)
    if spec.fmt == "GIF":
        img = img.quantize(64)
    options = {"JPEG": {"quality": 85}, "WEBP": {"quality": 80}}.get(spec.fmt, {})
    img.save(buf, spec.fmt, **options)
    return buf.getvalue()
