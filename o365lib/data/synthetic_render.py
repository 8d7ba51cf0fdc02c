"""Pixel rendering for the synthetic data set: shapes x colours x textures on cluttered backgrounds.

Each category is a composition of three parts (e.g. "red striped triangle"), so classes share
parts the way real categories share parts and context. Colours are far apart in RGB and the
shapes have distinct silhouettes, so a small CNN at 128x128 can tell them apart once an object
is big enough for its texture to show; small objects lose their texture, which is what makes
the "small and clustered" tail classes hard (the talk's okra and scallop).

Rendering is pure numpy and deterministic: an image depends only on its seed and its object
list. Shapes fill their box exactly (the annotation is the tight box); later objects occlude
earlier ones.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

__all__ = ["COLOURS", "PRETRAIN_SHAPES", "SHAPES", "SHAPE_ASPECT", "TEXTURES", "encode_png", "render_image"]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross", "star", "crescent", "bar")
# Polygon shape families that no detection class uses: the backbone pretraining set (the stand-in for
# ImageNet, whose label set is not Objects365's) is drawn from these, never from SHAPES.
# Vertices in the [-1, 1] box (v grows downwards), touching all four sides.
_POLYGONS: dict[str, tuple[tuple[float, float], ...]] = {
    "hexagon": ((1, 0), (0.5, 1), (-0.5, 1), (-1, 0), (-0.5, -1), (0.5, -1)),
    "pentagon": ((0, -1), (1, -0.24), (0.62, 1), (-0.62, 1), (-1, -0.24)),
    "arrow": ((-1, -0.35), (0.1, -0.35), (0.1, -1), (1, 0), (0.1, 1), (0.1, 0.35), (-1, 0.35)),
    "trapezoid": ((-1, 1), (1, 1), (0.45, -1), (-0.45, -1)),
    "chevron": ((0, -1), (1, 1), (0.5, 1), (0, 0.05), (-0.5, 1), (-1, 1)),
    "bolt": ((-0.2, -1), (0.8, -1), (0.2, -0.2), (1, -0.2), (1, 0), (-0.6, 1), (-0.05, 0.2), (-1, 0.2), (-1, 0)),
    "hourglass": ((-1, -1), (1, -1), (0.12, 0), (1, 1), (-1, 1), (-0.12, 0)),
    "tee": ((-1, -1), (1, -1), (1, -0.4), (0.3, -0.4), (0.3, 1), (-0.3, 1), (-0.3, -0.4), (-1, -0.4)),
}
PRETRAIN_SHAPES: tuple[str, ...] = tuple(_POLYGONS)
# width / height of each shape's box (before a small per-instance jitter)
SHAPE_ASPECT: dict[str, float] = {s: 1.0 for s in SHAPES + PRETRAIN_SHAPES} | {"bar": 2.5, "crescent": 0.8,
                                                                              "arrow": 1.4}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "orange": (250, 140, 20),
    "yellow": (245, 225, 40),
    "green": (35, 185, 60),
    "cyan": (40, 215, 225),
    "blue": (45, 75, 235),
    "magenta": (215, 50, 205),
    "white": (245, 245, 245),
}
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted", "checkered", "hollow", "two-tone")
_SUPERSAMPLE = 3
_STAR_INNER = 0.45


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of ``shape`` on normalised coordinates u, v in [-1, 1] (v grows downwards).

    Every shape reaches all four sides of the [-1, 1] square, so its box is tight.
    """
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape in ("square", "bar"):
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if shape == "triangle":  # apex up
        return (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "cross":
        return (np.abs(u) <= 0.34) | (np.abs(v) <= 0.34)
    if shape == "star":  # 5 points, top tip up; extents rescaled so that all four sides are touched
        x = u * np.sin(2 * np.pi / 5)
        y_up = 1.0 - (v + 1.0) * (1.0 + np.cos(np.pi / 5)) / 2.0
        theta = np.arctan2(x, y_up) % (2 * np.pi / 5)  # angle from the nearest tip ...
        from_tip = np.minimum(theta, 2 * np.pi / 5 - theta)  # ... folded into [0, pi/5]
        return np.hypot(x, y_up) <= _star_radius(from_tip)
    if shape == "crescent":  # opening to the right; horizontal extent [-1, 0.533] rescaled to [-1, 1]
        x = -1.0 + (u + 1.0) * (1.0 + 0.5333) / 2.0
        return (x * x + v * v <= 1.0) & ((x - 0.45) ** 2 + v * v > 0.85**2)
    if shape in _POLYGONS:
        return _polygon_mask(_POLYGONS[shape], u, v)
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES + PRETRAIN_SHAPES}")


def _polygon_mask(vertices: tuple[tuple[float, float], ...], u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside of a simple polygon by the even-odd rule (a horizontal ray crosses an odd number of edges)."""
    inside = np.zeros(np.broadcast(u, v).shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1]):
        if y0 == y1:
            continue
        spans = (v >= min(y0, y1)) & (v < max(y0, y1))
        x_cross = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
        inside ^= spans & (u < x_cross)
    return inside


def _star_radius(from_tip: np.ndarray) -> np.ndarray:
    """Boundary radius of a unit 5-point star at an angle ``from_tip`` in [0, pi/5] from a tip.

    The edge is the straight line from the tip (radius 1, angle 0) to the notch (radius
    ``_STAR_INNER``, angle pi/5); in polar form a line is ``r = p / cos(a - alpha)``.
    """
    tip = np.array([1.0, 0.0])
    notch = _STAR_INNER * np.array([np.cos(np.pi / 5), np.sin(np.pi / 5)])
    d = notch - tip
    normal = np.array([d[1], -d[0]]) / np.hypot(*d)
    dist = float(normal @ tip)
    if dist < 0:
        normal, dist = -normal, -dist
    alpha = float(np.arctan2(normal[1], normal[0]))
    return dist / np.cos(from_tip - alpha)


def _coverage(shape: str, texture: str, w: int, h: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape filling a ``h x w`` box (supersampled, cached)."""
    return _coverage_cached(shape, texture == "hollow", w, h)


@lru_cache(maxsize=8192)  # sizes repeat: ~5k distinct masks for ~33k objects in the default set
def _coverage_cached(shape: str, hollow: bool, w: int, h: int) -> np.ndarray:
    s = _SUPERSAMPLE if min(w, h) < 24 else 2  # large shapes need less anti-aliasing
    u = (np.arange(w * s) + 0.5) / (w * s) * 2.0 - 1.0
    v = (np.arange(h * s) + 0.5) / (h * s) * 2.0 - 1.0
    uu, vv = np.meshgrid(u, v)
    mask = _shape_mask(shape, uu, vv)
    if hollow:  # keep an outline about a quarter of the size thick
        mask &= ~_shape_mask(shape, uu / 0.55, vv / 0.55)
        if shape in ("square", "bar", "cross"):
            mask = _shape_mask(shape, uu, vv) & ~((np.abs(uu) < 0.55) & (np.abs(vv) < 0.55)
                                                 & _shape_mask(shape, uu / 0.55, vv / 0.55))
    cov = mask.reshape(h, s, w, s).mean(axis=(1, 3), dtype=np.float32)[..., None]
    cov.flags.writeable = False
    return cov


def _texture(texture: str, colour: np.ndarray, w: int, h: int) -> np.ndarray:
    """The ``h x w x 3`` float fill of an object: its colour with a dark pattern."""
    return np.where(_dark_pattern(texture, w, h), colour * np.float32(0.28), colour)


@lru_cache(maxsize=8192)
def _dark_pattern(texture: str, w: int, h: int) -> np.ndarray:
    """Where a texture shows the dark shade of the colour (``h x w x 1`` bool, cached)."""
    ys, xs = np.mgrid[0:h, 0:w]
    size = min(w, h)
    if texture in ("solid", "hollow"):
        use_dark = np.zeros((h, w), dtype=bool)
    elif texture == "striped":
        period = max(4, size // 4)
        use_dark = ((xs + ys) % period) < period / 2
    elif texture == "dotted":
        period = max(4, size // 4)
        cx = (xs % period) - (period - 1) / 2
        cy = (ys % period) - (period - 1) / 2
        use_dark = cx * cx + cy * cy <= (0.3 * period) ** 2
    elif texture == "checkered":
        cell = max(2, size // 5)
        use_dark = ((xs // cell + ys // cell) % 2) == 1
    elif texture == "two-tone":
        use_dark = ys >= h / 2
    else:
        raise ValueError(f"unknown texture {texture!r}; known: {TEXTURES}")
    pattern = use_dark[..., None]
    pattern.flags.writeable = False
    return pattern


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A dull, low-saturation background: a gradient, faint grey blobs and strokes, sparse speckles.

    No dense per-pixel noise: it would make PNGs several times larger and slower to encode
    without making the task more realistic at this scale.
    """
    base = rng.uniform(40, 100) + rng.uniform(-10, 10, size=3)
    axis = (np.arange(size, dtype=float) + 0.5) / size
    angle = rng.uniform(0, 2 * np.pi)
    slope = rng.uniform(-40, 40)
    ramp = (np.cos(angle) * axis[None, :] + np.sin(angle) * axis[:, None] - 0.5) * slope
    grey = ramp  # 2-D field shared by the three channels
    for _ in range(int(rng.integers(2, 7))):  # soft blobs (separable Gaussians) and thin strokes, grey
        cx, cy = rng.uniform(0, 1, size=2)
        tone = rng.uniform(-35, 35)
        if rng.random() < 0.5:
            g = 2 * rng.uniform(0.05, 0.2) ** 2
            grey += tone * np.outer(np.exp(-((axis - cy) ** 2) / g), np.exp(-((axis - cx) ** 2) / g))
        else:
            theta = rng.uniform(0, np.pi)
            dist = np.abs((axis[None, :] - cx) * np.sin(theta) - (axis[:, None] - cy) * np.cos(theta))
            grey += (tone * 0.8) * (dist < rng.uniform(0.004, 0.012))
    img = grey.astype(np.float32)[..., None] + base.astype(np.float32)
    count = int(size * size * 0.02)  # speckles on ~2% of the pixels
    ys, xs = rng.integers(0, size, size=(2, count))
    img[ys, xs] += rng.normal(0.0, 18.0, size=(count, 1)).astype(np.float32)
    return img


def render_image(
    *, size: int, seed: int | list[int], objects: list[tuple[str, str, str, list[int]]]
) -> np.ndarray:
    """Render one ``size x size`` RGB uint8 image.

    ``objects`` are ``(shape, colour, texture, [x, y, w, h])`` with integer boxes inside the
    image, drawn in order (later ones occlude earlier ones). ``seed`` drives the background
    and the per-instance colour jitter only, so the result is a pure function of the inputs.
    """
    rng = np.random.default_rng(seed)
    img = _background(rng, size)
    for shape, colour_name, texture, (x, y, w, h) in objects:
        colour = (np.asarray(COLOURS[colour_name], dtype=float) * rng.uniform(0.88, 1.0)).astype(np.float32)
        alpha = _coverage(shape, texture, int(w), int(h))
        fill = _texture(texture, colour, int(w), int(h))
        patch = img[y:y + h, x:x + w]
        img[y:y + h, x:x + w] = patch * (1.0 - alpha) + fill * alpha
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes with fixed settings (no metadata, fixed compression) so output is reproducible."""
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG", compress_level=3, optimize=False)
    return buf.getvalue()
