"""The procedural renderer of the demo dataset: one Kvasir-like endoscopy image and its lesion mask.

Each class has its defining structure (polyp dome, blue dye, z-line, pylorus...), painted over
mucosa with nuisance variation (field of view, lighting, colour, blur, the green ScopeGuide inset
and burnt-in text) so the task is learnable but not trivial. :mod:`kvasir_tf.data.synthetic`
writes the dataset.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from kvasir_tf.errors import KvasirError

MIN_SIZE = 32

# RGB colours in 0..1.
_MUCOSA = np.array([0.80, 0.44, 0.38], np.float32)
_SQUAMOUS = np.array([0.90, 0.74, 0.68], np.float32)
_COLUMNAR = np.array([0.76, 0.30, 0.26], np.float32)
_DYE = np.array([0.30, 0.52, 0.82], np.float32)
_FIBRIN = np.array([0.95, 0.90, 0.70], np.float32)
_SCOPEGUIDE = np.array([0.08, 0.58, 0.46], np.float32)


# ----------------------------------------------------------------------------- primitives
class _Canvas:
    """Per-image geometry shared by the structure painters (normalised coords in [-1, 1])."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.size = size
        self.rng = rng
        ax = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
        self.x, self.y = np.meshgrid(ax, ax)

    def noise(self, cells: int, channels: int = 1) -> np.ndarray:
        """Smooth zero-mean noise with ~cells blobs across the image (std ~1)."""
        g = self.rng.standard_normal((cells, cells, channels)).astype(np.float32)
        out = cv2.resize(g, (self.size, self.size), interpolation=cv2.INTER_CUBIC)
        return out if channels > 1 else out.reshape(self.size, self.size)

    def polar(self, cx: float, cy: float):
        dx, dy = self.x - float(cx), self.y - float(cy)
        return np.hypot(dx, dy), np.arctan2(dy, dx)

    def px(self, v: float) -> int:
        """A length in normalised units to pixels (at least 1)."""
        return max(1, int(round(v * self.size / 2)))

    def to_px(self, x: float, y: float):
        return (int(round((x + 1) / 2 * self.size)), int(round((y + 1) / 2 * self.size)))

    def blank(self) -> np.ndarray:
        return np.zeros((self.size, self.size), np.float32)


_WOBBLE_BINS = 720


def _wobble(c: _Canvas, theta: np.ndarray, amount: float, harmonics: int = 4) -> np.ndarray:
    """Irregular radius factor 1 + sum of random angular harmonics."""
    table = np.linspace(-np.pi, np.pi, _WOBBLE_BINS, endpoint=False, dtype=np.float32)
    out = np.ones_like(table)
    for k in range(2, 2 + harmonics):
        out += amount / k * float(c.rng.uniform(0.3, 1.0)) * np.sin(k * table + float(c.rng.uniform(0, 2 * np.pi)))
    # A lookup over angle bins: sin() on every pixel per harmonic was the renderer's hot spot.
    idx = ((theta + np.pi) * (_WOBBLE_BINS / (2 * np.pi))).astype(np.int32) % _WOBBLE_BINS
    return out[idx]


def _shade(c: _Canvas, height: np.ndarray, strength: float) -> np.ndarray:
    """Lambert-like shading factor of a height map lit from near the camera, slightly off-axis."""
    gy, gx = np.gradient(height)
    gx *= c.size / 2
    gy *= c.size / 2
    ang = float(c.rng.uniform(0, 2 * np.pi))
    lx, ly = math.cos(ang) * 0.6, math.sin(ang) * 0.6
    ndotl = (1.0 - gx * lx - gy * ly) / np.sqrt(1.0 + gx * gx + gy * gy)
    return 1.0 + strength * (ndotl - 1.0)


def _point(rng: np.random.Generator, lim: float) -> tuple[float, float]:
    """A random centre as Python floats (numpy float64 scalars would promote images to float64)."""
    return tuple(float(v) for v in rng.uniform(-lim, lim, 2))


def _blend(img: np.ndarray, colour, alpha: np.ndarray) -> np.ndarray:
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    return img + a * (np.asarray(colour, np.float32) - img)


def _random_walks(c: _Canvas, n: int, steps: int, step_len: float, thickness: int,
                  branch: float = 0.3) -> np.ndarray:
    """Tortuous lines (vessels, streak edges) as a float map in 0..1."""
    canvas = np.zeros((c.size, c.size), np.uint8)
    for _ in range(n):
        x, y = c.rng.uniform(-1.1, 1.1, size=2)
        ang = float(c.rng.uniform(0, 2 * np.pi))
        pts = []
        for _ in range(steps):
            pts.append(c.to_px(x, y))
            ang += float(c.rng.normal(0, 0.45))
            x += np.cos(ang) * step_len
            y += np.sin(ang) * step_len
            if c.rng.random() < branch / steps:
                bx, by, bang = x, y, ang + c.rng.choice([-1, 1]) * float(c.rng.uniform(0.5, 1.2))
                bpts = [c.to_px(bx, by)]
                for _ in range(steps // 3):
                    bang += float(c.rng.normal(0, 0.4))
                    bx += np.cos(bang) * step_len
                    by += np.sin(bang) * step_len
                    bpts.append(c.to_px(bx, by))
                cv2.polylines(canvas, [np.array(bpts, np.int32)], False, 255, max(1, thickness - 1),
                              cv2.LINE_AA)
        cv2.polylines(canvas, [np.array(pts, np.int32)], False, 255, thickness, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255.0


def _base_mucosa(c: _Canvas, tint, vessel_strength: float, granular: float = 0.0):
    """Mucosa colour with low-frequency tone variation, vessels and a dark lumen."""
    rng = c.rng
    base = np.asarray(tint, np.float32) + rng.normal(0, 0.035, 3).astype(np.float32)
    tone = c.noise(4) * 0.07 + c.noise(9) * 0.03
    hue = c.noise(3, 3) * 0.03
    img = base[None, None, :] * (1.0 + tone[..., None]) + hue
    if granular > 0:
        fine = cv2.GaussianBlur(rng.standard_normal((c.size, c.size), dtype=np.float32), (0, 0), 0.8)
        img *= (1.0 + granular * fine)[..., None]
    if vessel_strength > 0:
        thick = max(1, c.size // 150)
        v = _random_walks(c, int(rng.integers(5, 12)), 18, 0.12, thick, branch=1.0)
        v = cv2.GaussianBlur(v, (0, 0), 0.6) * (0.5 + 0.5 * (c.noise(3) > -0.3))
        img *= (1.0 - vessel_strength * v[..., None] * np.array([0.30, 0.55, 0.45], np.float32))
    # Background folds: soft ridges to give every class some relief.
    folds = _random_walks(c, int(rng.integers(1, 4)), 12, 0.18, c.px(0.05), branch=0.0)
    folds = cv2.GaussianBlur(folds, (0, 0), c.size / 40)
    img *= _shade(c, folds * 0.08, 0.6)[..., None]
    return img


def _lumen(c: _Canvas, img: np.ndarray, cx: float, cy: float, radius: float, depth: float):
    """Soft dark region where the gut continues away from the camera."""
    r, th = c.polar(cx, cy)
    rr = r / (radius * _wobble(c, th, 0.25))
    dark = np.exp(-rr ** 2 * 1.5) * depth
    return img * (1.0 - dark[..., None])


# ----------------------------------------------------------------------------- class structures
def _polyp(c: _Canvas, img, dyed: float = 0.0, flat: float = 1.0):
    """A raised rounded mass (optionally blue-dyed); returns (img, mask, height)."""
    rng = c.rng
    cx, cy = _point(rng, 0.4)
    rad = float(rng.uniform(0.22, 0.4))
    asp = float(rng.uniform(0.7, 1.3))
    r, th = c.polar(cx, cy)
    rot = float(rng.uniform(0, np.pi))
    cr, sr = math.cos(rot), math.sin(rot)
    ex = (c.x - cx) * cr + (c.y - cy) * sr
    ey = -(c.x - cx) * sr + (c.y - cy) * cr
    rn = np.hypot(ex / asp, ey * asp) / (rad * _wobble(c, th, 0.22))
    inside = rn < 1.0
    height = np.sqrt(np.clip(1.0 - rn ** 2, 0, 1)) * rad * flat
    # Lobulated surface and pit pattern.
    height = height * (1.0 + 0.12 * c.noise(10) * inside)
    shading = _shade(c, height, 0.6)
    soft = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), max(0.8, c.size / 120))
    surface = np.array([0.86, 0.46, 0.42], np.float32) + rng.normal(0, 0.04, 3).astype(np.float32)
    surface = surface * (1.0 + 0.08 * c.noise(14, 1))[..., None]
    img = _blend(img, surface, soft * float(rng.uniform(0.5, 0.9)))
    if dyed > 0:
        # Submucosal dye shows through unevenly, strongest on the lifted dome, some spread around.
        patchy = np.clip(0.6 + 0.5 * c.noise(5), 0, 1)
        spread = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), c.size / 14)
        img = _blend(img, _DYE, dyed * patchy * np.maximum(soft, 0.6 * spread))
    img = img * (shading * (1.0 + 0.35 * height / rad))[..., None]  # the dome is nearer the light
    return img, inside, height


def _render_polyps(c, img):
    img, mask, height = _polyp(c, img, dyed=0.0 if c.rng.random() < 0.85 else float(c.rng.uniform(0.05, 0.15)))
    return img, mask, height


def _render_dyed_lifted(c, img):
    return _polyp(c, img, dyed=float(c.rng.uniform(0.55, 0.9)), flat=float(c.rng.uniform(0.6, 1.0)))


def _render_dyed_resection(c, img):
    """Blue-dyed flat area around a pale resection base with a whitish margin ring."""
    rng = c.rng
    cx, cy = _point(rng, 0.4)
    rad = float(rng.uniform(0.28, 0.45))
    r, th = c.polar(cx, cy)
    rn = r / (rad * _wobble(c, th, 0.3))
    dye_area = np.clip(1.3 - rn, 0, 1) ** 0.7 * np.clip(0.55 + 0.5 * c.noise(6), 0, 1)
    img = _blend(img, _DYE, dye_area * float(rng.uniform(0.55, 0.9)))
    inner = float(rng.uniform(0.45, 0.7))
    base = np.clip((inner - rn) / 0.15, 0, 1)  # resection base (wound): pale, where a lifted polyp is blue
    wound = np.array([0.9, 0.72, 0.66], np.float32) + rng.normal(0, 0.04, 3).astype(np.float32)
    img = _blend(img, wound, base * float(rng.uniform(0.7, 0.95)))
    ring = np.exp(-((rn - inner) / 0.1) ** 2) * float(rng.uniform(0.7, 0.95))
    img = _blend(img, [0.94, 0.88, 0.84], ring)
    height = -base * 0.03  # slight crater
    img = img * _shade(c, height, 0.5)[..., None]
    mask = (rn < inner + 0.1) | (dye_area * (rn < 1.1) > 0.5)
    return img, mask, np.zeros_like(height)


def _zline(c: _Canvas, img):
    """Pale squamous oesophagus outside, red columnar stomach inside a wavy ring."""
    rng = c.rng
    cx, cy = _point(rng, 0.35)
    rad = float(rng.uniform(0.3, 0.55))
    r, th = c.polar(cx, cy)
    boundary = rad * _wobble(c, th, float(rng.uniform(0.1, 0.3)), harmonics=6)
    d = (r - boundary) / rad  # >0 squamous side
    sq = _SQUAMOUS + rng.normal(0, 0.03, 3).astype(np.float32)
    col = _COLUMNAR + rng.normal(0, 0.03, 3).astype(np.float32)
    t = np.clip(0.5 + d / 0.08, 0, 1)
    tissue = col * (1 - t[..., None]) + sq * t[..., None]
    img = img / np.maximum(img.mean(axis=(0, 1), keepdims=True), 1e-3) * tissue
    img = _lumen(c, img, cx + float(rng.normal(0, 0.05)), cy + float(rng.normal(0, 0.05)), rad * 0.45,
                 float(rng.uniform(0.6, 0.85)))
    band = np.abs(d) < 0.12
    return img, band, (cx, cy, r, th, boundary)


def _render_zline(c, img):
    img, band, _ = _zline(c, img)
    return img, band, None


def _render_esophagitis(c, img):
    """Red streaks and erosions radiating from the z-line into an inflamed squamous lining."""
    rng = c.rng
    img, band, (cx, cy, r, th, boundary) = _zline(c, img)
    # Inflamed lining: the squamous side is redder than a normal z-line's, however many streaks.
    squamous = np.clip((r - boundary) / 0.08 + 0.5, 0, 1)
    img = _blend(img, [0.86, 0.45, 0.42], squamous * float(rng.uniform(0.25, 0.45)))
    streaks = np.zeros((c.size, c.size), np.uint8)
    n = int(rng.integers(6, 12))
    for ang in rng.uniform(-np.pi, np.pi, n):
        length = float(rng.uniform(0.3, 0.6))
        width = float(rng.uniform(0.07, 0.13))
        br = float(np.median(boundary))
        bx, by = cx + np.cos(ang) * br, cy + np.sin(ang) * br
        tx, ty = bx + np.cos(ang) * length, by + np.sin(ang) * length
        nx, ny = -np.sin(ang) * width, np.cos(ang) * width
        poly = np.array([c.to_px(bx + nx, by + ny), c.to_px(tx, ty), c.to_px(bx - nx, by - ny),
                         c.to_px(bx - np.cos(ang) * 0.05, by - np.sin(ang) * 0.05)], np.int32)
        cv2.fillPoly(streaks, [poly], 255, cv2.LINE_AA)
    s = cv2.GaussianBlur(streaks.astype(np.float32) / 255.0, (0, 0), max(0.8, c.size / 100))
    severity = float(rng.uniform(0.6, 1.0))
    img = _blend(img, [0.82, 0.22, 0.2], s * severity)
    # Fibrin-covered erosions inside some streaks.
    erosion = s * (c.noise(12) > 0.7)
    img = _blend(img, _FIBRIN, erosion * 0.8 * severity)
    return img, streaks > 127, None


def _render_pylorus(c, img):
    """Dark round opening with radial folds converging onto it."""
    rng = c.rng
    cx, cy = _point(rng, 0.4)
    rad = float(rng.uniform(0.09, 0.18))
    r, th = c.polar(cx, cy)
    rn = r / (rad * _wobble(c, th, 0.15))
    nfold = int(rng.integers(5, 10))
    folds = (0.5 + 0.5 * np.cos(nfold * th + 0.6 * c.noise(3) * 3)) * np.exp(-(r - rad) / 0.45)
    height = np.where(rn > 1, folds * 0.08, 0) + np.exp(-((rn - 1.3) / 0.35) ** 2) * 0.05
    img = img * _shade(c, height, 0.9)[..., None]
    img = _blend(img, [0.9, 0.55, 0.45], np.exp(-((rn - 1.25) / 0.3) ** 2) * 0.3)  # sphincter rim
    hole = np.clip((1.0 - rn) / 0.25 + 0.5, 0, 1)
    img = img * (1.0 - float(rng.uniform(0.85, 0.95)) * hole[..., None])
    return img, rn < 1.05, None


def _render_cecum(c, img):
    """Concentric cecal folds and the crescent-shaped appendiceal orifice."""
    rng = c.rng
    cx, cy = _point(rng, 0.3)
    r, th = c.polar(cx, cy)
    period = float(rng.uniform(0.22, 0.35))
    rw = r * _wobble(c, th, 0.2)
    folds = (0.5 + 0.5 * np.cos(2 * np.pi * rw / period)) ** 2 * np.clip(r / 0.2, 0, 1)
    folds *= np.clip(0.6 + 0.6 * c.noise(4), 0, 1)  # folds fade in and out around the lumen
    img = img * _shade(c, folds * float(rng.uniform(0.03, 0.05)), 1.0)[..., None]
    # Appendiceal orifice: a crescent slit off-centre.
    ang = float(rng.uniform(-np.pi, np.pi))
    dist = float(rng.uniform(0.2, 0.55))
    ox, oy = cx + np.cos(ang) * dist, cy + np.sin(ang) * dist
    orad = float(rng.uniform(0.08, 0.18))
    r1, _ = c.polar(ox, oy)
    shift = orad * float(rng.uniform(0.35, 0.6))
    r2, _ = c.polar(ox + np.cos(ang) * shift, oy + np.sin(ang) * shift)
    crescent = (r1 < orad) & (r2 > orad * 0.95)
    soft = cv2.GaussianBlur(crescent.astype(np.float32), (0, 0), max(0.8, c.size / 110))
    img = img * (1.0 - 0.55 * soft[..., None])
    img = _blend(img, [0.95, 0.7, 0.6], np.exp(-((r1 - orad * 1.15) / (orad * 0.2)) ** 2) * 0.35)
    img = _lumen(c, img, cx, cy, float(rng.uniform(0.1, 0.2)), float(rng.uniform(0.3, 0.6)))
    return img, crescent, None


def _render_uc(c, img):
    """Diffuse erythema with granular surface, no vessels, scattered fibrin-covered ulcers."""
    rng = c.rng
    red = float(rng.uniform(0.3, 0.8))
    img = _blend(img, [0.80, 0.25, 0.22], np.full(img.shape[:2], red * 0.45, np.float32))
    fine = cv2.GaussianBlur(rng.standard_normal(img.shape[:2], dtype=np.float32), (0, 0), 1.0)
    img = img * (1.0 + 0.12 * red * fine)[..., None]
    ulcers = (c.noise(int(rng.integers(6, 12))) + 0.4 * c.noise(20)) > float(rng.uniform(1.3, 1.9))
    soft = cv2.GaussianBlur(ulcers.astype(np.float32), (0, 0), max(0.8, c.size / 140))
    img = _blend(img, _FIBRIN + rng.normal(0, 0.03, 3).astype(np.float32), soft * float(rng.uniform(0.5, 0.9)))
    # Contact bleeding spots.
    spots = (c.noise(25) > 2.0).astype(np.float32)
    img = _blend(img, [0.55, 0.05, 0.05], cv2.GaussianBlur(spots, (0, 0), 1.0) * 0.6)
    return img, ulcers, None


# class -> (painter, mucosa tint, vessel strength range, granular)
CLASS_STYLE = {
    "polyps": (_render_polyps, _MUCOSA, (0.3, 0.9), 0.0),
    "dyed-lifted-polyps": (_render_dyed_lifted, _MUCOSA, (0.3, 0.9), 0.0),
    "dyed-resection-margins": (_render_dyed_resection, _MUCOSA, (0.2, 0.8), 0.0),
    "esophagitis": (_render_esophagitis, _SQUAMOUS, (0.1, 0.4), 0.0),
    "normal-z-line": (_render_zline, _SQUAMOUS, (0.1, 0.4), 0.0),
    "normal-pylorus": (_render_pylorus, np.array([0.84, 0.50, 0.40], np.float32), (0.0, 0.4), 0.0),
    "normal-cecum": (_render_cecum, np.array([0.84, 0.54, 0.42], np.float32), (0.4, 1.0), 0.0),
    "ulcerative-colitis": (_render_uc, _MUCOSA, (0.0, 0.15), 0.06),
}


# ----------------------------------------------------------------------------- framing
def _fov(c: _Canvas) -> np.ndarray:
    """Endoscope field of view: a circle clipped by the frame, or Kvasir's cut-corner octagon."""
    rng = c.rng
    ox, oy = rng.normal(0, 0.03, 2)
    x, y = c.x - ox, c.y - oy
    if rng.random() < 0.5:
        fov = np.hypot(x, y) < float(rng.uniform(0.95, 1.12))
    else:
        k = float(rng.uniform(1.3, 1.45))
        fov = (np.abs(x) + np.abs(y) < k) & (np.abs(x) < 0.98) & (np.abs(y) < 0.98)
    return fov


def _overlays(c: _Canvas, img: np.ndarray) -> np.ndarray:
    """Burnt-in ScopeGuide inset / blanked box (lower left) and text (upper left), any class.

    Returns the boolean overlay mask; ``img`` is modified in place.
    """
    rng = c.rng
    s = c.size
    over = np.zeros((s, s), bool)
    u = rng.random()
    if u < 0.45:
        w, h = int(s * float(rng.uniform(0.22, 0.3))), int(s * float(rng.uniform(0.22, 0.3)))
        y0 = s - h - int(s * float(rng.uniform(0.0, 0.03)))
        box = img[y0:y0 + h, :w]
        if u < 0.3:  # green ScopeGuide inset with a scope outline drawn in it
            box[:] = _SCOPEGUIDE + rng.normal(0, 0.02, 3).astype(np.float32)
            pts = np.cumsum(rng.normal(0, h / 10, (8, 2)), axis=0) + np.array([w / 2, h / 2])
            cv2.polylines(box, [pts.astype(np.int32)], False, (0.1, 0.1, 0.1), max(1, s // 160))
        else:  # inset blanked out to black
            box[:] = 0.0
        over[y0:y0 + h, :w] = True
    if rng.random() < 0.5:
        scale = s / 450
        y = int(s * 0.07)
        ink = np.zeros((s, s), np.uint8)  # opencv draws text on 8-bit images only
        for _ in range(int(rng.integers(2, 5))):
            text = "".join(rng.choice(list("0123456789/:."), int(rng.integers(4, 9))))
            org = (int(s * 0.02), y)
            cv2.putText(ink, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255,
                        max(1, int(round(scale * 1.5))), cv2.LINE_AA)
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            over[max(0, y - th - 1):y + 3, :org[0] + tw + 2] = True
            y += int(th * 1.8) + 1
        img[:] = _blend(img, [0.95, 0.95, 0.95], ink.astype(np.float32) / 255.0)
    return over


def render(class_name: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image of ``class_name``: (size x size x 3 uint8 RGB, size x size uint8 mask)."""
    if class_name not in CLASS_STYLE:
        raise KvasirError(f"unknown synthetic class {class_name!r}; choose from {', '.join(CLASS_STYLE)}")
    if size < MIN_SIZE:
        raise KvasirError(f"image size {size} is too small for synthetic images; use --size >= {MIN_SIZE}")
    c = _Canvas(size, rng)
    painter, tint, vessels, granular = CLASS_STYLE[class_name]
    img = _base_mucosa(c, tint, rng.uniform(*vessels), granular)
    if class_name not in ("normal-z-line", "esophagitis", "normal-cecum"):
        # Soft and at most half dark: only the pylorus is a sharp, black opening.
        img = _lumen(c, img, *_point(rng, 0.7), float(rng.uniform(0.15, 0.45)), float(rng.uniform(0.2, 0.5)))
    img, lesion, height = painter(c, img)
    # Illumination: global gain, colour temperature, vignetting from the scope's light.
    img = img * float(rng.uniform(0.72, 1.12)) * (1.0 + rng.normal(0, 0.05, 3)).astype(np.float32)
    rr = np.hypot(c.x - float(rng.normal(0, 0.15)), c.y - float(rng.normal(0, 0.15)))
    img = img * (1.0 - float(rng.uniform(0.2, 0.5)) * rr[..., None] ** 2)
    # Specular highlights: wet mucosa reflects the light source, more often on raised parts.
    spec = np.zeros((size, size), np.float32)
    bias = np.ones((size, size), np.float32) if height is None else 1.0 + 40.0 * height
    n_spec = int(rng.integers(3, 25))
    cand = rng.integers(0, size, (n_spec * 4, 2))
    score = bias[cand[:, 0], cand[:, 1]] * rng.random(len(cand))
    for yy, xx in cand[np.argsort(-score)[:n_spec]]:
        yy, xx = int(yy), int(xx)
        ax = (c.px(float(rng.uniform(0.005, 0.03))), c.px(float(rng.uniform(0.005, 0.015))))
        cv2.ellipse(spec, (xx, yy), ax, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
    spec = cv2.GaussianBlur(spec, (0, 0), 0.7)
    img = _blend(img, [1.0, 1.0, 0.98], spec)
    # Camera: defocus blur and sensor noise.
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.4)))
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * 0.012
    if rng.random() < 0.5:  # orientation is arbitrary; flip after painting so structures don't cluster
        img, lesion = img[:, ::-1], lesion[:, ::-1]
    img = np.ascontiguousarray(img)
    fov = _fov(c)
    img *= fov[..., None]
    over = _overlays(c, img)
    mask = (lesion & fov & ~over).astype(np.uint8) * 255
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8), mask
