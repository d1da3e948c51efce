"""`finetune-etl preview URL --output clouds.png`: a grid of a prepared dataset's point clouds.

Each cloud is drawn by a vectorized numpy orthographic projection from one fixed view (z up, as in STL and
matplotlib; turned 30 degrees round it and seen from 20 degrees above), centred and scaled with equal aspect
to fill its tile, points coloured by depth (near: yellow, far: purple). Points behind the cloud's front
surface are left out and the nearest point wins each pixel, so a sampled surface reads as a solid.
No plotting library, no display.
"""
import argparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from pipelines.datasets.contact_sheet import LETTERBOX, MARGIN, choose, load_items, run_command, sheet_parser, write_sheet

DESCRIPTION = ("Draw a grid of a prepared dataset's point clouds: mesh documents and the meshes of pairs, "
               "sampled by a hash of their ids, with their labels or captions.")
AZIMUTH, ELEVATION = np.radians(30.0), np.radians(20.0)
OCCLUSION = 0.3  # a point this far (in half-widths of its cloud) behind the front surface is hidden
# viridis at 0, 1/4, 1/2, 3/4, 1: far points dark, near points bright
DEPTH_COLOURS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64)


def view_rotation() -> np.ndarray:
    """(3, 3) float rotation taking (x, y, z) with z up to (right, up, towards the viewer)."""
    ca, sa, ce, se = np.cos(AZIMUTH), np.sin(AZIMUTH), np.cos(ELEVATION), np.sin(ELEVATION)
    z_up = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]])
    turn = np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]])
    tilt = np.array([[1, 0, 0], [0, ce, -se], [0, se, ce]])
    return tilt @ turn @ z_up


def splats(row: np.ndarray, column: np.ndarray, radius: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(n,) int pixel rows and columns -> (pixel, point): flat pixel indices of every point's disc of
    `radius` pixels, clipped to the side x side canvas, and the point each belongs to."""
    offsets = np.arange(-radius, radius + 1)
    dy, dx = (a.ravel() for a in np.meshgrid(offsets, offsets, indexing="ij"))
    disc = dy * dy + dx * dx <= radius * (radius + 1)
    dy, dx = dy[disc], dx[disc]
    rows, columns = row[:, None] + dy, column[:, None] + dx
    inside = ((rows >= 0) & (rows < side) & (columns >= 0) & (columns < side)).ravel()
    point = np.repeat(np.arange(len(row)), len(dy))
    return (rows * side + columns).ravel()[inside], point[inside]


def in_front(view: np.ndarray, tolerance: float) -> np.ndarray:
    """(n, 3) view coordinates within [-1, 1] -> (n,) bool: not hidden behind the front surface.

    The front surface is the nearest point in each cell of a coarse grid (a few points per cell); a point
    is hidden more than `tolerance` (plus the depth a floor spans in a cell) behind its own cell's, or twice
    that behind its 3 x 3 cells'.
    """
    cells = max(2, int(np.sqrt(len(view)) / 3))
    cell = np.clip(((view[:, :2] + 1) / 2 * cells).astype(np.int64), 0, cells - 1)
    own = cell[:, 1] * cells + cell[:, 0]
    visible = np.ones(len(view), bool)
    tolerance += 2 / cells / np.tan(ELEVATION)  # the depth a floor seen from ELEVATION spans in one cell
    for radius, allowed in ((0, tolerance), (1, 2 * tolerance)):
        front = np.full(cells * cells, -np.inf)
        pixel, point = splats(cell[:, 1], cell[:, 0], radius, cells)
        np.maximum.at(front, pixel, view[point, 2])
        visible &= view[:, 2] >= front[own] - allowed
    return visible


def render_cloud(points: np.ndarray, side: int) -> Image.Image:
    """(n, 3) float points -> a side x side RGB picture of them as discs (background LETTERBOX); points
    that `in_front` finds hidden are left out, so the back of a surface does not show through its gaps."""
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = LETTERBOX
    points = points[np.isfinite(points).all(axis=1)]
    if not len(points):
        return Image.fromarray(canvas)
    view = points @ view_rotation().T
    view -= (view.min(axis=0) + view.max(axis=0)) / 2
    radius = max(1, round(side / 80))
    extent = view[:, :2].max() or 1.0
    scale = (side / 2 - radius - 1) / extent
    column = np.rint(side / 2 + view[:, 0] * scale).astype(np.int64)
    row = np.rint(side / 2 - view[:, 1] * scale).astype(np.int64)
    depth = view[:, 2]
    visible = np.flatnonzero(in_front(view / extent, OCCLUSION))
    pixel, point = splats(row[visible], column[visible], radius, side)
    point = visible[point]
    nearest_first = np.lexsort((point, -depth[point], pixel))
    pixel, first = np.unique(pixel[nearest_first], return_index=True)
    nearness = (depth - depth.min()) / (np.ptp(depth) or 1.0)
    canvas.reshape(-1, 3)[pixel] = depth_colours(nearness[point[nearest_first][first]])
    return Image.fromarray(canvas)


def depth_colours(nearness: np.ndarray) -> np.ndarray:
    """(n,) float in [0, 1] -> (n, 3) uint8 RGB from DEPTH_COLOURS, linearly interpolated."""
    stops = np.linspace(0.0, 1.0, len(DEPTH_COLOURS))
    channels = [np.interp(nearness, stops, DEPTH_COLOURS[:, c]) for c in range(3)]
    return np.rint(np.stack(channels, axis=1)).astype(np.uint8)


def cloud_points(cloud: pa.Scalar) -> np.ndarray:
    """A point_cloud value (list of 3-float lists) -> (n, 3) float64 points."""
    values = pc.list_flatten(cloud.values) if len(cloud.values) else pa.array([], pa.float32())
    return np.asarray(values, np.float64).reshape(-1, 3)


def draw(args: argparse.Namespace) -> str:
    """Parsed options -> the grid written to args.output; returns the line to print."""
    items = load_items(args.url, "mesh", "point_cloud")
    chosen, note = choose(items, args.url, "point clouds", args.label, args.count, args.seed)
    side = args.tile - 2 * MARGIN
    pictures = [render_cloud(cloud_points(cloud), side) for cloud in chosen.contents]
    return write_sheet(pictures, chosen.captions.to_pylist(), args, "point clouds", note)


def main(argv: list[str]) -> int:
    """`finetune-etl preview` arguments -> exit code (0 written, 2 user error)."""
    parser = sheet_parser("finetune-etl preview", DESCRIPTION, count=16, noun="point clouds")
    return run_command(argv, parser, draw)
