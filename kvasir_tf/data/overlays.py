"""Optional blacking-out of Kvasir's burnt-in overlays, so a model can't learn shortcuts.

Kvasir v2 frames from the 720x576 Olympus processor carry patient/time text down the
upper-left margin and a green ScopeGuide (scope position) inset at the lower left;
whether they are present differs between classes and hospitals, so a classifier (and
its saliency maps) can latch onto them. Boxes are relative to the full frame, measured
on real 720x576 frames (the inset spans x 0.04..0.33, y 0.64..0.92; the text block
x 0.06..0.25, y 0.13..0.61) with a margin. On 1280x1024 and wider frames the same
boxes cover the top-left text corner and the inset's place. Applied to the full frame
before the centre crop; off by default everywhere (``mask_overlays=False``).
"""
import numpy as np

# (x0, y0, x1, y1) as fractions of width/height.
TEXT_BOX = (0.0, 0.0, 0.27, 0.62)
SCOPEGUIDE_BOX = (0.0, 0.62, 0.36, 1.0)
OVERLAY_BOXES = (TEXT_BOX, SCOPEGUIDE_BOX)


def overlay_mask(height: int, width: int) -> np.ndarray:
    """Boolean (H, W) array, True where an overlay may be."""
    m = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in OVERLAY_BOXES:
        m[int(round(y0 * height)):int(round(y1 * height)), int(round(x0 * width)):int(round(x1 * width))] = True
    return m


def mask_overlays(img: np.ndarray) -> np.ndarray:
    """A copy of an (H, W, 3) uint8 RGB frame with the overlay boxes set to black."""
    out = np.array(img, copy=True)
    out[overlay_mask(*img.shape[:2])] = 0
    return out
