"""A PIL contact sheet of a rig: the neutral and all 52 expressions, drawn by the synthetic renderer."""

from __future__ import annotations

import os

import numpy as np

from .. import arkit
from ..frames import Intrinsics
from ..pose import from_euler
from ..rig import Rig
from .render import SKIN, background_wall, render_rig, render_triangles


def rig_preview(
    rig: Rig, out: str | os.PathLike | None = None, tile: int = 200, cols: int = 8, supersample: int = 2
):
    """Contact sheet of the neutral and all 52 expressions (each at weight 1), labelled with ARKit names.

    Rendered by the synthetic actor's renderer without noise, frontal, cropped to the face (the
    ``"track"`` mask plus a 25 % margin). Vertices tint red with their displacement (strongest from
    5 mm on) so that small shapes such as the eye looks stay visible.

    Parameters
    ----------
    rig : Rig
    out : path of a PNG to write, optional
    tile : int, pixels per square tile
    cols : int, tiles per row (rows follow: 53 tiles -> 7 rows of 8)
    supersample : int, render at this multiple of ``tile`` and downsample (anti-aliasing)

    Returns
    -------
    PIL.Image.Image (RGB, ``cols * tile`` x ``ceil(53 / cols) * tile``)
    """
    from PIL import Image, ImageDraw, ImageFont

    if tile < 32 or cols < 1 or supersample < 1:
        raise ValueError("need tile >= 32 px, cols >= 1 and supersample >= 1")
    region = rig.masks["track"]
    pts = rig.neutral[region] if region.any() else rig.neutral
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1])) * 1.25
    size = tile * supersample
    distance = 0.6
    f = size * distance / extent  # the face region, centred at ``distance``, fills the tile
    strip = max(14, tile // 9)  # label height; the face is centred in the tile above it
    k = Intrinsics(size, size, f, f, (size - 1) / 2, (size - strip * supersample - 1) / 2)
    r = from_euler(0.0, 0.0, 0.0)
    t = np.array([0.0, 0.0, distance]) - r @ centre  # the face centre on the optical axis
    bg = background_wall(k, None)
    tris = render_triangles(rig)
    albedo = (
        np.broadcast_to(np.asarray(SKIN, np.float32), rig.neutral.shape)
        if rig.colors is None
        else rig.colors.astype(np.float32)
    )
    red = np.array([235.0, 40.0, 30.0], np.float32)
    names = ("neutral", *arkit.ARKIT_NAMES)
    rows = -(-len(names) // cols)
    sheet = Image.new("RGB", (cols * tile, rows * tile), (40, 40, 40))
    draw = ImageDraw.Draw(sheet, "RGBA")
    try:
        font = ImageFont.load_default(size=max(10, tile // 14))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for i, name in enumerate(names):
        w = np.zeros(arkit.NUM_SHAPES, np.float32)
        colors = albedo
        if i:
            w[i - 1] = 1.0
            mag = np.linalg.norm(rig.deltas[i - 1], axis=1)
            a = np.clip(mag / 0.005, 0.0, 1.0)[:, None] * 0.6
            colors = albedo * (1 - a) + red * a
        res = render_rig(rig, w, r, t, k, bg, vertex_colors=colors, triangles=tris)
        img = Image.fromarray(res.color)
        if supersample > 1:
            img = img.resize((tile, tile), Image.Resampling.LANCZOS)
        x0, y0 = (i % cols) * tile, (i // cols) * tile
        sheet.paste(img, (x0, y0))
        draw.rectangle([x0, y0 + tile - strip, x0 + tile - 1, y0 + tile - 1], fill=(0, 0, 0, 150))
        draw.text(
            (x0 + tile // 2, y0 + tile - strip // 2), name, fill=(255, 255, 255), font=font, anchor="mm"
        )
        draw.rectangle([x0, y0, x0 + tile - 1, y0 + tile - 1], outline=(20, 20, 20))
    if out is not None:
        sheet.save(out)
    return sheet
