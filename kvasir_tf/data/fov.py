"""The endoscope's field of view in a frame: the bright disc, minus black borders and overlay boxes.

Patches and masks must come from inside the field of view, never from the black margins or the
burnt-in text and ScopeGuide boxes a classifier could latch onto.
"""
from __future__ import annotations

import cv2
import numpy as np

# Field-of-view analysis runs on a copy whose longer side is this many pixels.
_ANALYSIS_SIDE = 512
_DARK = 18          # max-channel value below which a pixel counts as black border/box
_MARGIN = 0.015     # FOV erosion, fraction of the shorter side
# Right and bottom edge of the upper-left zone that may hold burnt-in text (fractions of the
# frame), measured on the Kvasir-SEG frames: wider than overlays.TEXT_BOX, which is for
# un-cropped 720x576 Kvasir v2 frames.
TEXT_ZONE = (0.3, 0.65)



def _largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(mask, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _rect_like(comp: np.ndarray, x0, y0, x1, y1) -> bool:
    """True when a component's top and right edges are straight (an overlay box, not a lumen)."""
    w, h = x1 - x0, y1 - y0
    if w < 8 or h < 8:
        return False
    inner_x = slice(x0 + w // 5, x1 - w // 5)
    inner_y = slice(y0 + h // 5, y1 - h // 5)
    top = comp[y0 + 2, inner_x].mean()
    right = comp[inner_y, x1 - 3].mean()
    return bool(top > 0.9 and right > 0.9)


def _downscale(img: np.ndarray):
    h, w = img.shape[:2]
    f = min(1.0, _ANALYSIS_SIDE / max(h, w))
    if f == 1.0:
        return img, 1.0
    return cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA), f


def _hull(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(mask.shape, np.uint8)
    if contours:
        cv2.fillConvexPoly(out, cv2.convexHull(np.concatenate(contours)), 1)
    return out > 0


def _analyse(img: np.ndarray):
    """(field of view before overlay-box removal, [(kind, box)]) of a small RGB frame."""
    h, w = img.shape[:2]
    v = img.max(axis=2)
    dark = v < _DARK
    k = max(3, int(0.01 * min(h, w)) | 1)
    lit = cv2.morphologyEx((~dark).astype(np.uint8), cv2.MORPH_OPEN, np.ones((k, k), np.uint8)) > 0
    hull = _hull(_largest_component(lit))
    lower_left = np.zeros((h, w), bool)
    lower_left[h // 2:, : w // 2] = True
    boxes = []
    # Green ScopeGuide inset: saturated green-cyan, a colour that mucosa and blue dye never have.
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    green = (hsv[..., 0] >= 40) & (hsv[..., 0] <= 95) & (hsv[..., 1] > 90) & (hsv[..., 2] > 60)
    green = cv2.morphologyEx((green & lower_left).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(green)
    for x, y, bw, bh, area in stats[1:]:
        if area > 0.004 * h * w and area > 0.5 * bw * bh:
            boxes.append(("green-inset", (0, y, x + bw, h)))
    # Black areas reaching into the hull from its rim: a blanked inset (a rectangle with straight
    # top and right edges in the lower-left quarter), a cut-off corner, or a lumen at the edge.
    # None of them is usable mucosa; the rectangles are reported as overlays.
    rim = hull & ~(cv2.erode(hull.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((dark & hull).astype(np.uint8))
    touching = np.unique(labels[rim & dark])
    edge_dark = np.isin(labels, touching[touching > 0])
    fov = hull & ~(cv2.dilate(edge_dark.astype(np.uint8), np.ones((k, k), np.uint8)) > 0)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((dark & hull & lower_left).astype(np.uint8))
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        if area >= 0.004 * h * w and _rect_like(labels == i, x, y, x + bw, y + bh):
            boxes.append(("black-box", (0, y, x + bw, h)))  # it continues into the border
    # Burnt-in text (date, ids, a dash bar) down the left side: thin bright colourless strokes
    # (white top-hat) lined up in rows; specular highlights are blobs, not rows.
    kk = max(5, int(0.02 * min(h, w)) | 1)
    tophat = cv2.morphologyEx(v, cv2.MORPH_TOPHAT, np.ones((kk, kk), np.uint8))
    strokes = (tophat > 40) & (v > 140) & (hsv[..., 1] < 80)
    strokes[:, int(w * 0.35):] = False
    strokes[int(h * 0.7):, :] = False
    rows = cv2.morphologyEx(strokes.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3 * kk), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(rows)
    lines = [(x, y, x + bw, y + bh) for x, y, bw, bh, area in stats[1:]
             if bw >= 4 * bh and bw >= 0.04 * w and area >= 0.3 * bw * bh]
    # Faint text on bright tissue escapes the detector, so the usual text zone is always
    # excluded; detected rows extend it (re-framed Kvasir-SEG images shift the text).
    x1, y1 = int(round(TEXT_ZONE[0] * w)), int(round(TEXT_ZONE[1] * h))
    if lines:
        x1 = max(x1, min(w, max(b[2] for b in lines) + kk))
        y1 = max(y1, min(h, max(b[3] for b in lines) + kk))
    boxes.append(("text", (0, 0, x1, y1)))
    return fov, boxes


def overlay_boxes(img: np.ndarray) -> list:
    """Burnt-in overlays found in an RGB frame: [(kind, (x0, y0, x1, y1))] in pixels.

    ``green-inset``: the ScopeGuide inset; ``black-box``: the inset blanked out by whoever
    redistributed the image; ``text``: the burnt-in text block at the upper left (always
    reported, at least :data:`TEXT_ZONE`). Boxes extend to the frame's left edge (and the
    inset's to the bottom): nothing there is tissue.
    """
    h, w = img.shape[:2]
    small, f = _downscale(img)
    out = []
    for kind, (x0, y0, x1, y1) in _analyse(small)[1]:
        out.append((kind, (max(0, int(x0 / f)), max(0, int(y0 / f)),
                           min(w, int(np.ceil(x1 / f))), min(h, int(np.ceil(y1 / f))))))
    return out


def fov_mask(img: np.ndarray, margin: float = _MARGIN) -> np.ndarray:
    """Boolean (H, W) mask of the endoscope's field of view minus overlays, eroded by ``margin``.

    The lit area's largest connected component, convex-hulled (the FOV is a circle or a
    cut-corner octagon, so a dark lumen inside stays inside), minus black areas reaching in
    from its rim, detected overlay boxes and the text zone, eroded by ``margin`` x the
    shorter side so JPEG halos and the FOV's soft rim stay out.
    """
    h, w = img.shape[:2]
    small, f = _downscale(img)
    fov, boxes = _analyse(small)
    for _kind, (x0, y0, x1, y1) in boxes:
        fov[y0:y1, x0:x1] = False
    sh, sw = small.shape[:2]
    m = max(1, int(round(margin * min(sh, sw))))
    fov = cv2.erode(fov.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * m + 1, 2 * m + 1)))
    fov = _largest_component(fov > 0)
    if f < 1:
        fov = cv2.resize(fov.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return fov
