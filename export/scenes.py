"""Procedural road-driving scenes with pixel-exact Cityscapes train-id labels.

No dataset can be downloaded where this project is built and tested, so the
demo network, INT8 calibration, outlier tests and the forecasting model use
scenes generated here. A tiny 3-D world is rendered with a pinhole camera:

* a ground plane in *road coordinates* (lateral offset ``s``, distance ``z``;
  the road may curve gently): road with lanes, lane marks, zebra crossings and
  tram rails, curbs, sidewalks, grass strips and the ground of the lots along it;
* lots along both sides: buildings (boxes with window grids, shops, pitched
  roofs), walls, fences, hedges, trees, grass, cross streets;
* street objects: vehicles (cars, trucks, buses, trams as 3-D part models),
  bicycles / motorcycles with or without riders, pedestrians, poles with lamps,
  traffic signs and traffic lights, trees; optional *outliers* (objects of none
  of the 19 classes);
* sky, clouds and a distant skyline.

Everything is drawn back to front (painter's algorithm) into the image and the
label map with the same OpenCV calls (``cv2.LINE_8``, no anti-aliasing), so
labels are pixel-exact; textures, lighting, blur and noise are applied to the
image only. Moving objects and the camera follow smooth trajectories, which
gives temporally coherent sequences and videos for free.

Everything is deterministic: the world of image ``index`` depends only on
``(seed, split, index)``; parts of a world (chunks of road, traffic streams)
have their own generators (Python's ``random.Random`` seeded with a CRC32 of the
key: cheap to seed, identical on every Python 3 version), so a frame does not
depend on what else was generated. Vehicle models and tree crowns come from a
finite set of templates cached per process (the cache never changes a result).

Only numpy and OpenCV are used (no torch: calib/ uses it too). Workstation side: the device
never needs it (rt-plan checks a plan on a structured pattern or the user's frames instead).
About 25 ms per 256x512 frame on one x86 core once the template caches are warm
(about 16 ms per frame inside a sequence, where the world is generated once).

Library API::

    render_scene(seed, index, size=(256, 512), outliers=False, split="train")
        -> (image_bgr uint8 HxWx3, label uint8 HxW, outlier_mask uint8 HxW or None)
    render_sequence(seed, index, length=30, size=(256, 512), fps=15, split="train", outliers=False)
        -> iterator of (image, label, outlier_mask or None)
    render_scene_details(...), render_sequence_details(...)
        -> the same with a fourth item: outlier instance map, objects (kind, size, distance,
           contrast) and lighting, written beside the mask by write_split --outliers
    video_frames(seed, frames, size=(256, 512), fps=30) -> iterator of images (one continuous drive)
    outlier_object(seed, index=0, size=96) -> (patch_bgr uint8 hxwx3, alpha uint8 hxw 0/255)
    write_split(root, split, count, seed, size, outliers, workers, progress, color)
    write_sequences(root, split, count, length, fps, seed, size, outliers, workers, progress, color)
    write_video(path, frames, fps, seed, size, progress) -> frame count read back (or None)
    parse_size("256x512") -> (256, 512)
"""
import colorsys
import math
import os
import random
import zlib

import cv2
import numpy as np

from runtime.data import classes as K
from runtime.data import cityscapes as cs
from runtime.errors import UserError
from runtime.sizes import split_pair

DEFAULT_SIZE = (256, 512)
DEFAULT_FPS = 15
DEFAULT_LENGTH = 30

# a few fake city names per split (images and sequences use different ones so they never collide)
CITIES = {
    "train": ("alderbrook", "birchfield", "copperton", "dunmoor"),
    "val": ("eastwick", "fairhaven"),
    "test": ("glenridge", "harrowgate"),
}
SEQUENCE_CITIES = {
    "train": ("ironvale", "juniper"),
    "val": ("kestrel", "larkspur"),
    "test": ("millbank", "northcote"),
}

OUTLIER, INLIER, VOID = cs.OUTLIER, cs.INLIER, cs.VOID

_OUT_TMP = 254   # label of outlier pixels while drawing (255 in the output)
_HOOD_TMP = 253  # label of the ego-vehicle hood while drawing (255 in the output)
_SHIFT = 4       # fractional bits of the polygon coordinates given to OpenCV
_ONE = float(1 << _SHIFT)
_LIM = 1.0e6     # pixel coordinates are clamped to +-_LIM before drawing
NEAR = 0.35      # near clipping plane (m)
SPRITE_NEAR = 1.4
CHUNK = 50.0     # the static world is generated in chunks of CHUNK metres
LOT_FAR = 175.0
VIEW_FAR = 110.0
ROAD_FAR = 420.0
_LINE = cv2.LINE_8

(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEG, TERRAIN, SKY, PERSON, RIDER,
 CAR, TRUCK, BUS, TRAIN, MOTO, BIKE) = range(19)

__all__ = ["render_scene", "render_sequence", "render_scene_details", "render_sequence_details", "video_frames", "outlier_object", "write_split", "write_sequences",
           "write_video", "parse_size", "cities", "sample_name", "has_outliers", "DEFAULT_SIZE", "DEFAULT_FPS",
           "CITIES", "SEQUENCE_CITIES"]


# --------------------------------------------------------------------------- helpers

def _seed(*parts):
    """A 31-bit seed from a tuple of ints and strings (stable across processes and runs)."""
    return zlib.crc32(repr(tuple(parts)).encode("utf-8")) & 0x7fffffff


class _R(random.Random):
    """Scalar random draws (Python's Mersenne Twister: cheap to seed, cheap per draw)."""

    def u(self, a, b):
        return a + (b - a) * self.random()

    def chance(self, p):
        return self.random() < p

    def pick(self, seq):
        return seq[int(self.random() * len(seq))]

    def wpick(self, items, weights):
        x = self.random() * sum(weights)
        for item, weight in zip(items, weights):
            x -= weight
            if x < 0:
                return item
        return items[-1]

    def ri(self, a, b):
        """Integer in [a, b]."""
        return a + int(self.random() * (b - a + 1))

    def exp(self, mean):
        return -mean * math.log(1.0 - self.random())


_NP = np.random.RandomState(0)  # re-seeded before every use (seeding is cheap, construction is not)


def _np_rng(seed):
    _NP.seed(seed)
    return _NP


_CIRCLES = {}


def _circle(n):
    if n not in _CIRCLES:
        ang = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
        _CIRCLES[n] = (np.cos(ang), np.sin(ang))
    return _CIRCLES[n]


def _bgr(r, g, b):
    return (int(b), int(g), int(r))


def _hsv(h, s, v):
    r, g, b = colorsys.hsv_to_rgb((h % 360.0) / 360.0, min(1.0, max(0.0, s)), min(1.0, max(0.0, v)))
    return (int(b * 255), int(g * 255), int(r * 255))


def _clip8(x):
    return int(min(255, max(0, x)))


def _jit(rng, col, amount=12.0):
    r = rng.random
    a2 = 2.0 * amount
    b, g, rr = col
    b += (r() - 0.5) * a2
    g += (r() - 0.5) * a2
    rr += (r() - 0.5) * a2
    return (int(b) if 0 <= b <= 255 else (0 if b < 0 else 255),
            int(g) if 0 <= g <= 255 else (0 if g < 0 else 255),
            int(rr) if 0 <= rr <= 255 else (0 if rr < 0 else 255))


def _scale(col, k):
    b, g, r = col[0] * k, col[1] * k, col[2] * k
    return (int(b) if b <= 255 else 255, int(g) if g <= 255 else 255, int(r) if r <= 255 else 255)


def _mix(a, b, t):
    return tuple(_clip8(x * (1.0 - t) + y * t) for x, y in zip(a, b))


def _ipts(uv):
    return np.round(np.clip(uv, -_LIM, _LIM) * _ONE).astype(np.int32)


def _ipt(u, v):
    return (int(round(min(_LIM, max(-_LIM, u)) * _ONE)), int(round(min(_LIM, max(-_LIM, v)) * _ONE)))


def _clip_near(Q, near):
    """Clip a closed polygon (N, 3 camera coordinates) against z >= near (Sutherland-Hodgman)."""
    z = Q[:, 2]
    inside = z >= near
    if inside.all():
        return Q
    if not inside.any():
        return None
    Qn = np.roll(Q, -1, axis=0)
    zn = Qn[:, 2]
    cross = inside != (zn >= near)
    denom = zn - z
    denom[denom == 0] = 1e-9
    tt = ((near - z) / denom)[:, None]
    inter = Q + tt * (Qn - Q)
    n = len(Q)
    out = np.empty((2 * n, 3))
    out[0::2] = Q
    out[1::2] = inter
    keep = np.empty(2 * n, bool)
    keep[0::2] = inside
    keep[1::2] = cross
    R = out[keep]
    return R if len(R) >= 3 else None


def parse_size(text):
    """'256x512' (HxW) -> (256, 512); UserError when malformed."""
    if isinstance(text, (tuple, list)):
        h, w = text
    else:
        pair = split_pair(str(text).replace("*", "x"))
        if pair is None:
            raise UserError("bad size {!r}: expected HxW, e.g. 256x512".format(text))
        h, w = pair
    h, w = int(h), int(w)
    if h < 32 or w < 32 or h > 4096 or w > 8192:
        raise UserError("bad size {}x{}: height and width must be in 32..4096 / 32..8192".format(h, w))
    return h, w


# --------------------------------------------------------------------------- road geometry

class _Road(object):
    """Centre line x_c(z) of a gently curving road (small-angle approximation)."""

    def __init__(self, amp, period, phase):
        self.amp = amp
        self.k = 2.0 * math.pi / period
        self.phase = phase
        self.c0 = math.cos(phase)

    def theta(self, z):
        return self.amp * math.sin(self.k * z + self.phase)

    def xc(self, z):
        if self.amp == 0.0:
            return np.zeros_like(z) if isinstance(z, np.ndarray) else 0.0
        if isinstance(z, np.ndarray):
            return -self.amp / self.k * (np.cos(self.k * z + self.phase) - self.c0)
        return -self.amp / self.k * (math.cos(self.k * z + self.phase) - self.c0)


# --------------------------------------------------------------------------- canvas

class _Canvas(object):
    """Image + label (+ ground shade) and the camera of one frame."""

    def __init__(self, world, cam):
        self.H, self.W = world.size
        self.f, self.cx, self.v0, self.ch = world.f, world.cx, world.v0, world.cam_h
        self.X, self.Z, self.yaw, self.s = cam
        self.cy, self.sy = math.cos(self.yaw), math.sin(self.yaw)
        self.road = world.road
        self.img = np.empty((self.H, self.W, 3), np.uint8)
        self.lab = np.empty((self.H, self.W), np.uint8)
        self.shade = np.full((self.H, self.W), 255, np.uint8)
        self.inst = None   # outlier instance ids (uint8, 0 = none), made by the first outlier drawn
        self.tan = (self.W * 0.5 + 2.0) / self.f

    # camera transform ------------------------------------------------------
    def cam(self, X, Y, Z):
        dx = X - self.X
        dz = Z - self.Z
        return dx * self.cy - dz * self.sy, Y - self.ch, dx * self.sy + dz * self.cy

    def zc_of(self, s, z):
        return (self.road.xc(z) + s - self.X) * self.sy + (z - self.Z) * self.cy

    def xz_cam(self, s, z):
        dx = self.road.xc(z) + s - self.X
        dz = z - self.Z
        return dx * self.cy - dz * self.sy, dx * self.sy + dz * self.cy

    def visible(self, xc, zc, radius):
        return zc > -radius and abs(xc) - radius < max(zc, 0.0) * self.tan + radius

    # polygons ---------------------------------------------------------------
    def _onscreen(self, uv):
        return not (uv[:, 0].max() < 0 or uv[:, 0].min() > self.W or
                    uv[:, 1].max() < 0 or uv[:, 1].min() > self.H)

    def fill_uv(self, uvs, col, cls):
        # coordinates stay far inside int32 (NEAR clipping bounds them); OpenCV clips to the image
        pts = [(uv * _ONE + 0.5).astype(np.int32) for uv in uvs if len(uv) >= 2]
        if not pts:
            return
        if col is not None:
            cv2.fillPoly(self.img, pts, col, _LINE, _SHIFT)
        if cls is not None:
            cv2.fillPoly(self.lab, pts, cls, _LINE, _SHIFT)

    def shade_uv(self, uvs, value):
        pts = [_ipts(uv) for uv in uvs if len(uv) >= 2 and self._onscreen(uv)]
        if pts:
            cv2.fillPoly(self.shade, pts, int(value), _LINE, _SHIFT)

    def project_poly(self, X, Y, Z):
        """Clip and project one world polygon; (N, 2) pixels or None."""
        x, y, z = self.cam(X, Y, Z)
        if z.min() < NEAR:
            Q = _clip_near(np.stack([x, y, z], 1), NEAR)
            if Q is None:
                return None
            x, y, z = Q[:, 0], Q[:, 1], Q[:, 2]
        return np.stack([self.cx + self.f * x / z, self.v0 - self.f * y / z], 1)

    def road_poly(self, S, Z, Y=None):
        """Project a polygon given in road coordinates (lateral S, height Y, distance Z)."""
        S = np.asarray(S, np.float64)
        Z = np.asarray(Z, np.float64)
        Y = np.zeros_like(S) if Y is None else np.asarray(Y, np.float64)
        return self.project_poly(self.road.xc(Z) + S, Y, Z)

    def road_quads(self, S0, S1, Z0, Z1):
        """Many flat ground quads (arrays); those touching the near plane are dropped."""
        S0, S1, Z0, Z1 = [np.asarray(a, np.float64) for a in (S0, S1, Z0, Z1)]
        n = len(S0)
        if n == 0:
            return []
        S = np.stack([S0, S1, S1, S0], 1)
        Z = np.stack([Z0, Z0, Z1, Z1], 1)
        X = self.road.xc(Z) + S
        x, y, z = self.cam(X, np.zeros_like(X), Z)
        keep = (z >= NEAR).all(1)
        if not keep.any():
            return []
        x, y, z = x[keep], y[keep], z[keep]
        uv = np.stack([self.cx + self.f * x / z, self.v0 - self.f * y / z], 2)
        return list(uv)

    def band(self, s0, s1, z0, z1, col, cls, zs):
        """A ground band [s0, s1] x [z0, z1] following the road curve."""
        if z1 <= z0:
            return
        inner = zs[(zs > z0) & (zs < z1)]
        zz = np.concatenate([[z0], inner, [z1]])
        S = np.concatenate([np.full(len(zz), s0), np.full(len(zz), s1)])
        Z = np.concatenate([zz, zz[::-1]])
        uv = self.road_poly(S, Z)
        if uv is not None:
            self.fill_uv([uv], col, cls)
        return uv

    # sprites (screen-aligned billboards) -------------------------------------
    def anchor(self, s, z, y=0.0):
        """(u, v_ground, pixels per metre, depth) of a point, or None when too near."""
        xc, zc = self.xz_cam(s, z)
        if zc < SPRITE_NEAR:
            return None
        sc = self.f / zc
        return (self.cx + xc * sc, self.v0 + (self.ch - y) * sc, sc, zc)

    def sp_poly(self, a, pts, col, cls):
        arr = np.asarray(pts, np.float64)
        uv = np.empty_like(arr)
        uv[:, 0] = a[0] + a[2] * arr[:, 0]
        uv[:, 1] = a[1] - a[2] * arr[:, 1]
        self.fill_uv([uv], col, cls)

    def sp_rect(self, a, x0, x1, y0, y1, col, cls, min_px=0.0):
        if min_px and (x1 - x0) * a[2] < min_px:
            xm = 0.5 * (x0 + x1)
            half = 0.5 * min_px / a[2]
            x0, x1 = xm - half, xm + half
        self.sp_poly(a, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)), col, cls)

    def sp_ellipse(self, a, x, y, rx, ry, col, cls):
        u = a[0] + a[2] * x
        v = a[1] - a[2] * y
        self.px_ellipse(u, v, rx * a[2], ry * a[2], col, cls)

    def px_ellipse(self, u, v, rx, ry, col, cls, angle=0.0):
        if u + rx < 0 or u - rx > self.W or v + ry < 0 or v - ry > self.H:
            return
        c = _ipt(u, v)
        ax = (max(1, int(round(rx * _ONE))), max(1, int(round(ry * _ONE))))
        if col is not None:
            cv2.ellipse(self.img, c, ax, angle, 0, 360, col, -1, _LINE, _SHIFT)
        if cls is not None:
            cv2.ellipse(self.lab, c, ax, angle, 0, 360, cls, -1, _LINE, _SHIFT)

    def px_line(self, p0, p1, thick, col, cls):
        t = max(1, int(round(thick)))
        if t > 400:
            return
        a, b = _ipt(p0[0], p0[1]), _ipt(p1[0], p1[1])
        if col is not None:
            cv2.line(self.img, a, b, col, t, _LINE, _SHIFT)
        if cls is not None:
            cv2.line(self.lab, a, b, cls, t, _LINE, _SHIFT)

    def sp_line(self, a, x0, y0, x1, y1, width, col, cls, min_px=1.0):
        self.px_line((a[0] + a[2] * x0, a[1] - a[2] * y0), (a[0] + a[2] * x1, a[1] - a[2] * y1),
                     max(min_px, width * a[2]), col, cls)

    # vertical faces along the road ------------------------------------------
    def quad3(self, sa, za, sb, zb, y0, y1, col, cls):
        xa = self.road.xc(za) + sa
        xb = self.road.xc(zb) + sb
        uv = self.project_poly(np.array([xa, xb, xb, xa]), np.array([y0, y0, y1, y1]),
                               np.array([za, zb, zb, za], np.float64))
        if uv is not None:
            self.fill_uv([uv], col, cls)
        return uv

    def face_rect_groups(self, sa, za, sb, zb, rects, ids, cols, cls):
        """Like face_rects for several colour groups at once (ids: group of each rect, drawn in order)."""
        if len(rects) == 0:
            return
        xa = self.road.xc(za) + sa
        xb = self.road.xc(zb) + sb
        length = math.hypot(xb - xa, zb - za)
        if length <= 1e-6:
            return
        fu = np.stack([rects[:, 0], rects[:, 1], rects[:, 1], rects[:, 0]], 1) / length
        Y = np.stack([rects[:, 2], rects[:, 2], rects[:, 3], rects[:, 3]], 1)
        x, y, z = self.cam(xa + fu * (xb - xa), Y, za + fu * (zb - za))
        keep = (z >= NEAR).all(1)
        if not keep.any():
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([self.cx + self.f * x / z, self.v0 - self.f * y / z], 2)
        np.clip(uv, -_LIM, _LIM, out=uv)
        ip = (uv * _ONE).round().astype(np.int32)
        for i, col in enumerate(cols):
            sel = keep & (ids == i)
            if not sel.any():
                continue
            pts = list(ip[sel])
            cv2.fillPoly(self.img, pts, col, _LINE, _SHIFT)
            if cls is not None:
                cv2.fillPoly(self.lab, pts, cls, _LINE, _SHIFT)

    def face_rects(self, sa, za, sb, zb, rects, col, cls):
        """Many rectangles (n, 4: u0, u1, y0, y1 in metres along the face) on a vertical face."""
        if len(rects) == 0:
            return
        rects = np.asarray(rects, np.float64)
        xa = self.road.xc(za) + sa
        xb = self.road.xc(zb) + sb
        length = math.hypot(xb - xa, zb - za)
        if length <= 1e-6:
            return
        fu = np.stack([rects[:, 0], rects[:, 1], rects[:, 1], rects[:, 0]], 1) / length
        Y = np.stack([rects[:, 2], rects[:, 2], rects[:, 3], rects[:, 3]], 1)
        X = xa + fu * (xb - xa)
        Z = za + fu * (zb - za)
        x, y, z = self.cam(X, Y, Z)
        keep = (z >= NEAR).all(1)
        if not keep.any():
            return
        x, y, z = x[keep], y[keep], z[keep]
        uv = np.stack([self.cx + self.f * x / z, self.v0 - self.f * y / z], 2)
        self.fill_uv(list(uv), col, cls)


# --------------------------------------------------------------------------- part models (vehicles, cycles)

class _Model(object):
    """A rigid object made of polygons, rings and lines in local coordinates (a along, w right, y up).

    Faces carry a visibility plane (drawn only when the camera is in front of it);
    groups are drawn in order, or sorted far-to-near along ``a`` (truck cab / box, tram cars).
    """

    def __init__(self, length, width, height, cls):
        self.length, self.width, self.height, self.cls = length, width, height, cls
        self.pts = []
        self.n = 0
        self.parts = []          # (group, kind, start, end, normal, point, col, cls, width, face, lod)
        self.group_a = []
        self.sort_groups = False
        self.rider = None
        self.P = None

    def group(self, a_center):
        self.group_a.append(a_center)
        return len(self.group_a) - 1

    def _add(self, group, kind, pts, col, cls, normal=None, point=None, width=0.0, lod=0):
        arr = np.asarray(pts, np.float64)
        face = None
        if normal is not None:   # shading index: 0 rear, 1 front, 2 left, 3 right, 4 top
            nx, ny, nz = abs(normal[0]), abs(normal[1]), normal[2]
            if nz > max(nx, ny):
                face = 4
            elif nx >= ny:
                face = 0 if normal[0] < 0 else 1
            else:
                face = 2 if normal[1] < 0 else 3
        self.parts.append((group, kind, self.n, self.n + len(arr), normal, point, col, cls, width, face, lod))
        self.pts.append(arr)
        self.n += len(arr)

    def poly(self, group, pts, col, cls, normal=None, point=None, lod=0):
        self._add(group, 0, pts, col, cls, normal, point, lod=lod)

    def ring(self, group, pts, col, cls, width, lod=0):
        self._add(group, 1, pts, col, cls, width=width, lod=lod)

    def line(self, group, pts, col, cls, width, lod=0):
        self._add(group, 2, pts, col, cls, width=width, lod=lod)

    def face(self, group, quad, col, cls, normal, details=()):
        """A planar face (4 corners) with details (inset quads as (u0, u1, v0, v1, col, cls))."""
        quad = np.asarray(quad, np.float64)
        point = tuple(float(v) for v in quad.mean(0))
        normal = tuple(float(v) for v in normal)
        self.poly(group, quad, col, cls, normal, point)
        for u0, u1, v0, v1, dcol, dcls in details:
            self.poly(group, _bilinear(quad, u0, u1, v0, v1), dcol, dcls, normal, point, lod=1)

    def box(self, group, a0, a1, w0, w1, y0, y1, cols, cls, details=None, top=True, faces="rfls"):
        """Axis-aligned box; cols: dict face -> colour (r rear, f front, l left, s right, t top)."""
        details = details or {}
        b = [(a0, w0, y0), (a0, w1, y0), (a1, w1, y0), (a1, w0, y0)]
        t = [(a0, w0, y1), (a0, w1, y1), (a1, w1, y1), (a1, w0, y1)]
        if "r" in faces:
            self.face(group, [b[0], b[1], t[1], t[0]], cols["r"], cls, (-1, 0, 0), details.get("r", ()))
        if "f" in faces:
            self.face(group, [b[2], b[3], t[3], t[2]], cols["f"], cls, (1, 0, 0), details.get("f", ()))
        if "l" in faces:
            self.face(group, [b[3], b[0], t[0], t[3]], cols["l"], cls, (0, -1, 0), details.get("l", ()))
        if "s" in faces:
            self.face(group, [b[1], b[2], t[2], t[1]], cols["s"], cls, (0, 1, 0), details.get("s", ()))
        if top:
            self.face(group, t, cols["t"], cls, (0, 0, 1), details.get("t", ()))

    def disc(self, group, a, y, r, w, col, cls, n=12, normal=None, ring=None, lod=0):
        cs_, sn_ = _circle(n)
        pts = np.empty((n, 3))
        pts[:, 0] = a + r * cs_
        pts[:, 1] = w
        pts[:, 2] = y + r * sn_
        if normal is None:
            self.poly(group, pts, col, cls, lod=lod)
        else:
            self.poly(group, pts, col, cls, tuple(float(v) for v in normal), (a, w, y), lod=lod)
        if ring is not None:
            self.ring(group, pts, ring[0], cls, ring[1], lod=lod)

    def finalize(self):
        self.P = np.concatenate(self.pts, 0) if self.pts else np.zeros((0, 3))
        self.pts = None
        if not self.sort_groups:
            self.parts.sort(key=lambda p: p[0])
        return self


def _bilinear(quad, u0, u1, v0, v1):
    """Sub-quad of a quad (corners b0, b1, t1, t0) at fractions u (b0->b1) and v (bottom->top)."""
    u = np.array([[u0], [u1], [u1], [u0]])
    v = np.array([[v0], [v0], [v1], [v1]])
    bottom = quad[0] + (quad[1] - quad[0]) * u
    top = quad[3] + (quad[2] - quad[3]) * u
    return bottom + (top - bottom) * v


def _draw_model(cv, model, s, z, heading, light):
    """Draw a part model at road position (s, z) with heading (rad, 0 = along the road).

    ``light`` gives the brightness of the rear, front, left, right and top faces.
    """
    H = heading + cv.road.theta(z)
    sh, chh = math.sin(H), math.cos(H)
    X0 = cv.road.xc(z) + s
    P = model.P
    X = X0 + P[:, 0] * sh + P[:, 1] * chh
    Z = z + P[:, 0] * chh - P[:, 1] * sh
    x, y, zz = cv.cam(X, P[:, 2], Z)
    if zz.max() < NEAR:
        return
    # camera in local coordinates (for face visibility)
    dx, dz = cv.X - X0, cv.Z - z
    cam_l = (float(dx * sh + dz * chh), float(dx * chh - dz * sh), float(cv.ch))
    ok = zz >= NEAR
    allok = bool(ok.all())
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = cv.f / np.where(ok, zz, 1.0)
        UV = np.empty((len(zz), 2))
        UV[:, 0] = cv.cx + x * inv
        UV[:, 1] = cv.v0 - y * inv
    lo = UV.min(0)
    hi = UV.max(0)
    if hi[0] < 0 or lo[0] > cv.W or hi[1] < 0 or lo[1] > cv.H:
        if allok:
            return
    np.clip(UV, -_LIM, _LIM, out=UV)
    IP = (UV * _ONE).round().astype(np.int32)
    parts = model.parts
    if model.sort_groups:
        ga = model.group_a
        parts = sorted(parts, key=lambda p: (-abs(cam_l[0] - ga[p[0]]), p[0]))
    zmid = max(float(zz.mean()), NEAR)
    detail = cv.f * max(model.width, model.height) / zmid >= 12.0
    shaded = {}
    batch = None
    for group, kind, a, b, normal, point, col, cls, width, face, lod in parts:
        if lod and not detail:
            continue
        if normal is not None:
            if ((cam_l[0] - point[0]) * normal[0] + (cam_l[1] - point[1]) * normal[1] +
                    (cam_l[2] - point[2]) * normal[2]) <= 0:
                continue
        if face is not None and col is not None:
            key = (col, face)
            c2 = shaded.get(key)
            if c2 is None:
                c2 = shaded[key] = _scale(col, light[face])
            col = c2
        if kind == 0 and lod and (allok or ok[a:b].all()):
            if batch is not None and batch[0] == col and batch[1] == cls:
                batch[2].append(IP[a:b])
                continue
            _flush(cv, batch)
            batch = [col, cls, [IP[a:b]]]
            continue
        _flush(cv, batch)
        batch = None
        if allok or ok[a:b].all():
            pts = [IP[a:b]]
        elif kind == 0:
            Q = _clip_near(np.stack([x[a:b], y[a:b], zz[a:b]], 1), NEAR)
            if Q is None:
                continue
            uv = np.stack([cv.cx + cv.f * Q[:, 0] / Q[:, 2], cv.v0 - cv.f * Q[:, 1] / Q[:, 2]], 1)
            pts = [_ipts(uv)]
        else:
            continue
        if kind == 0:
            if col is not None:
                cv2.fillPoly(cv.img, pts, col, _LINE, _SHIFT)
            if cls is not None:
                cv2.fillPoly(cv.lab, pts, cls, _LINE, _SHIFT)
        else:
            t = max(1, int(round(width * cv.f / zmid)))
            if t > 300:
                continue
            closed = kind == 1
            if col is not None:
                cv2.polylines(cv.img, pts, closed, col, t, _LINE, _SHIFT)
            if cls is not None:
                cv2.polylines(cv.lab, pts, closed, cls, t, _LINE, _SHIFT)
    _flush(cv, batch)
    if model.rider is not None:
        _draw_rider(cv, model.rider, X0, z, sh, chh)


def _flush(cv, batch):
    """Draw a batch of non-overlapping polygons of one colour and class."""
    if batch is not None:
        if batch[0] is not None:
            cv2.fillPoly(cv.img, batch[2], batch[0], _LINE, _SHIFT)
        if batch[1] is not None:
            cv2.fillPoly(cv.lab, batch[2], batch[1], _LINE, _SHIFT)


def _draw_rider(cv, rider, X0, z, sh, chh):
    """A rider on a cycle: limbs as thick lines between projected key points."""
    kp = rider["kp"]                      # (n, 3) local key points
    X = X0 + kp[:, 0] * sh + kp[:, 1] * chh
    Z = z + kp[:, 0] * chh - kp[:, 1] * sh
    x, y, zz = cv.cam(X, kp[:, 2], Z)
    if zz.min() < SPRITE_NEAR:
        return
    sc = cv.f / zz
    U = cv.cx + x * sc
    V = cv.v0 - y * sc
    s = float(sc.mean())
    hip, shoulder, hand_l, hand_r, foot_l, foot_r, knee_l, knee_r = [(U[i], V[i]) for i in range(8)]
    cls = RIDER
    legs, top, skin, helmet = rider["legs"], rider["top"], rider["skin"], rider["helmet"]
    cv.px_line(hip, knee_l, s * 0.15, legs, cls)
    cv.px_line(knee_l, foot_l, s * 0.12, legs, cls)
    cv.px_line(hip, knee_r, s * 0.15, legs, cls)
    cv.px_line(knee_r, foot_r, s * 0.12, legs, cls)
    cv.px_line(hip, shoulder, s * 0.36, top, cls)
    cv.px_line(shoulder, hand_l, s * 0.09, top, cls)
    cv.px_line(shoulder, hand_r, s * 0.09, top, cls)
    hx = shoulder[0] + (shoulder[0] - hip[0]) * 0.25
    hy = shoulder[1] - s * 0.2
    cv.px_ellipse(hx, hy, s * 0.12, s * 0.13, skin, cls)
    cv.px_ellipse(hx, hy - s * 0.04, s * 0.13, s * 0.1, helmet, cls)


# vehicle palettes (RGB)
_CAR_COLORS = [(235, 235, 235), (25, 25, 28), (170, 172, 176), (110, 112, 116), (30, 45, 90),
               (170, 30, 30), (40, 80, 170), (40, 90, 60), (200, 190, 160), (220, 190, 40),
               (220, 110, 30), (100, 70, 50), (60, 60, 70), (140, 20, 40), (120, 170, 200)]
_CAR_WEIGHTS = [16, 14, 14, 12, 5, 6, 6, 3, 3, 2, 2, 2, 6, 3, 2]


def _paint(rng):
    if rng.chance(0.12):
        return _hsv(rng.u(0, 360), rng.u(0.4, 0.9), rng.u(0.3, 0.9))
    return _jit(rng, _bgr(*rng.wpick(_CAR_COLORS, _CAR_WEIGHTS)), 14)


def _glass(rng):
    base = rng.pick([(40, 48, 55), (55, 62, 75), (30, 32, 36), (80, 95, 110), (120, 130, 140)])
    return _jit(rng, base, 10)


def _face_cols(col, light):
    """Per-face colours of a box lit by the world light (dict face -> colour)."""
    return {"r": _scale(col, light[0]), "f": _scale(col, light[1]), "l": _scale(col, light[2]),
            "s": _scale(col, light[3]), "t": _scale(col, light[4])}


def _wheels(m, g, axles, r, half_w, tire=(28, 28, 30), rim=(150, 150, 155), cls=CAR):
    """Wheels on both sides (tires first, then rims, so equal colours are drawn in one call)."""
    for w, normal in ((-half_w - 0.01, (0, -1, 0)), (half_w + 0.01, (0, 1, 0))):
        for a in axles:
            m.disc(g, a, r, r, w, tire, cls, n=12, normal=normal, lod=1)
        for a in axles:
            m.disc(g, a, r, r * 0.55, w, rim, cls, n=10, normal=normal, lod=1)


def _make_car(rng, light, dims):
    L, W, H = dims["L"], dims["W"], dims["H"]
    col = _paint(rng)
    glass = _glass(rng)
    m = _Model(L, W, H, CAR)
    hb = H * rng.u(0.48, 0.58)
    cols = _face_cols(col, light)
    tail = _jit(rng, _bgr(190, 20, 25), 20)
    head = _jit(rng, _bgr(225, 225, 215), 15)
    plate = (215, 215, 215)
    dark = (35, 35, 38)
    g0 = m.group(0.0)
    rear = [(0.04, 0.22, 0.55, 0.82, tail, CAR), (0.78, 0.96, 0.55, 0.82, tail, CAR),
            (0.38, 0.62, 0.28, 0.5, plate, CAR), (0.0, 1.0, 0.0, 0.2, dark, CAR)]
    front = [(0.04, 0.24, 0.55, 0.8, head, CAR), (0.76, 0.96, 0.55, 0.8, head, CAR),
             (0.3, 0.7, 0.4, 0.72, dark, CAR), (0.0, 1.0, 0.0, 0.2, dark, CAR)]
    side = [(0.0, 1.0, 0.0, 0.12, _scale(col, 0.6), CAR)]
    m.box(g0, -L / 2, L / 2, -W / 2, W / 2, 0.2, hb, cols, CAR,
          details={"r": rear, "f": front, "l": side, "s": side})
    _wheels(m, g0, (-L / 2 + 0.75, L / 2 - 0.8), 0.32, W / 2)
    # cabin: a frustum on the body
    a0 = -L / 2 + L * rng.u(0.08, 0.2)
    a1 = L / 2 - L * rng.u(0.25, 0.35)
    if H > 1.8:
        a0, a1 = -L / 2 + 0.15, L / 2 - 0.6
    w0 = W / 2 * 0.94
    w1 = W / 2 * 0.8
    r0 = a0 + (H - hb) * rng.u(0.3, 0.9)
    r1 = a1 - (H - hb) * rng.u(0.6, 1.0)
    if r1 - r0 < 0.5:
        r1 = r0 + 0.5
    B = [(a0, -w0, hb), (a0, w0, hb), (a1, w0, hb), (a1, -w0, hb)]
    T = [(r0, -w1, H), (r0, w1, H), (r1, w1, H), (r1, -w1, H)]
    g1 = m.group(0.0)
    win = [(0.08, 0.92, 0.1, 0.88, glass, CAR)]
    sidewin = [(0.06, 0.47, 0.1, 0.85, glass, CAR), (0.53, 0.94, 0.1, 0.85, glass, CAR)]
    m.face(g1, [B[0], B[1], T[1], T[0]], cols["r"], CAR, _outward(B[0], B[1], T[1], (0, 0, 0.5 * (hb + H))), win)
    m.face(g1, [B[2], B[3], T[3], T[2]], cols["f"], CAR, _outward(B[2], B[3], T[3], (0, 0, 0.5 * (hb + H))), win)
    m.face(g1, [B[3], B[0], T[0], T[3]], cols["l"], CAR, _outward(B[3], B[0], T[0], (0, 0, 0.5 * (hb + H))),
           sidewin)
    m.face(g1, [B[1], B[2], T[2], T[1]], cols["s"], CAR, _outward(B[1], B[2], T[2], (0, 0, 0.5 * (hb + H))),
           sidewin)
    m.face(g1, T, cols["t"], CAR, (0, 0, 1))
    return m.finalize()


def _outward(p, q, r, center):
    ux, uy, uz = q[0] - p[0], q[1] - p[1], q[2] - p[2]
    vx, vy, vz = r[0] - p[0], r[1] - p[1], r[2] - p[2]
    n = (uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx)
    if n[0] * (p[0] - center[0]) + n[1] * (p[1] - center[1]) + n[2] * (p[2] - center[2]) < 0:
        n = (-n[0], -n[1], -n[2])
    norm = math.sqrt(n[0] ** 2 + n[1] ** 2 + n[2] ** 2) + 1e-9
    return (n[0] / norm, n[1] / norm, n[2] / norm)


def _make_truck(rng, light, dims):
    L, W = dims["L"], dims["W"]
    cab_l = rng.u(1.9, 2.4)
    cab_h = rng.u(2.7, 3.2)
    box_h = rng.u(3.2, 3.9)
    m = _Model(L, W, box_h, TRUCK)
    m.sort_groups = True
    cab_col = _paint(rng) if rng.chance(0.6) else _jit(rng, _bgr(230, 230, 228), 10)
    box_col = _jit(rng, _bgr(232, 232, 230), 12) if rng.chance(0.5) else _paint(rng)
    glass = _glass(rng)
    dark = (32, 32, 35)
    gc = m.group(L / 2 - cab_l / 2)
    gb = m.group(-cab_l / 2 - 0.15)
    front = [(0.06, 0.94, 0.55, 0.9, glass, TRUCK), (0.1, 0.9, 0.12, 0.35, dark, TRUCK),
             (0.02, 0.16, 0.38, 0.48, (220, 220, 215), TRUCK), (0.84, 0.98, 0.38, 0.48, (220, 220, 215), TRUCK)]
    side = [(0.5, 0.92, 0.55, 0.88, glass, TRUCK)]
    m.box(gc, L / 2 - cab_l, L / 2, -W / 2 + 0.05, W / 2 - 0.05, 0.45, cab_h, _face_cols(cab_col, light), TRUCK,
          details={"f": front, "l": side, "s": [(0.08, 0.5, 0.55, 0.88, glass, TRUCK)]})
    stripe = _paint(rng)
    bside = [(0.0, 1.0, 0.0, 0.1, dark, TRUCK)]
    if rng.chance(0.5):
        bside.append((0.1, 0.9, 0.4, 0.6, stripe, TRUCK))
    rear = [(0.0, 1.0, 0.0, 0.06, dark, TRUCK), (0.495, 0.505, 0.06, 0.97, dark, TRUCK),
            (0.04, 0.12, 0.02, 0.06, (30, 30, 200), TRUCK), (0.88, 0.96, 0.02, 0.06, (30, 30, 200), TRUCK)]
    m.box(gb, -L / 2, L / 2 - cab_l - 0.3, -W / 2, W / 2, 0.95, box_h, _face_cols(box_col, light), TRUCK,
          details={"l": bside, "s": bside, "r": rear})
    m.box(gb, -L / 2 + 0.3, L / 2 - 0.3, -W / 2 + 0.3, W / 2 - 0.3, 0.45, 0.95,
          _face_cols(dark, (1, 1, 1, 1, 1)), TRUCK, top=False)
    _wheels(m, gc, (L / 2 - cab_l * 0.55,), 0.5, W / 2 - 0.02, cls=TRUCK)
    _wheels(m, gb, (-L / 2 + 1.6, -L / 2 + 2.7), 0.5, W / 2 - 0.02, cls=TRUCK)
    return m.finalize()


def _make_bus(rng, light, dims):
    L, W = dims["L"], dims["W"]
    H = rng.u(2.95, 3.3)
    col = _paint(rng) if rng.chance(0.5) else _jit(rng, _bgr(*rng.pick(
        [(240, 200, 30), (200, 30, 30), (30, 90, 170), (240, 240, 235), (40, 140, 70), (230, 120, 30)])), 15)
    glass = _glass(rng)
    dark = (30, 30, 34)
    m = _Model(L, W, H, BUS)
    g = m.group(0.0)
    n_win = max(3, int(L / 1.7))
    side = [(0.0, 1.0, 0.0, 0.08, dark, BUS)]
    band0, band1 = 0.36, 0.86
    for i in range(n_win):
        u0 = 0.03 + 0.94 * i / n_win
        u1 = 0.03 + 0.94 * (i + 0.86) / n_win
        side.append((u0, u1, band0, band1, glass, BUS))
    side_s = list(side)
    for u in (0.08, 0.52):
        side_s.append((u, u + 0.09, 0.04, band1, _scale(glass, 0.8), BUS))
    front = [(0.04, 0.96, 0.28, 0.84, glass, BUS), (0.15, 0.85, 0.87, 0.96, (20, 150, 230), BUS),
             (0.03, 0.15, 0.12, 0.2, (220, 220, 215), BUS), (0.85, 0.97, 0.12, 0.2, (220, 220, 215), BUS)]
    rear = [(0.15, 0.85, 0.55, 0.85, glass, BUS), (0.03, 0.13, 0.15, 0.3, (30, 30, 200), BUS),
            (0.87, 0.97, 0.15, 0.3, (30, 30, 200), BUS)]
    m.box(g, -L / 2, L / 2, -W / 2, W / 2, 0.3, H, _face_cols(col, light), BUS,
          details={"l": side, "s": side_s, "f": front, "r": rear})
    _wheels(m, g, (L / 2 - 2.6, -L / 2 + 3.0) + ((0.0,) if L > 14 else ()), 0.5, W / 2, cls=BUS)
    return m.finalize()


def _make_tram(rng, light, dims):
    n, seg, gap = dims["n"], dims["seg"], dims["gap"]
    L, W = dims["L"], dims["W"]
    H = rng.u(3.3, 3.6)
    col = _jit(rng, _bgr(*rng.pick([(230, 230, 225), (200, 30, 30), (240, 200, 40), (30, 80, 160),
                                    (40, 130, 70), (230, 120, 30), (150, 150, 155)])), 15)
    col2 = _paint(rng)
    glass = _glass(rng)
    dark = (30, 30, 34)
    m = _Model(L, W, H, TRAIN)
    m.sort_groups = True
    for i in range(n):
        a0 = -L / 2 + i * (seg + gap)
        a1 = a0 + seg
        g = m.group(0.5 * (a0 + a1))
        side = [(0.0, 1.0, 0.0, 0.12, col2, TRAIN)]
        k = 4
        for j in range(k):
            u0 = 0.04 + 0.92 * j / k
            side.append((u0, u0 + 0.92 / k * 0.8, 0.28, 0.72, glass, TRAIN))
        side.append((0.45, 0.55, 0.05, 0.72, _scale(col2, 0.7), TRAIN))
        det = {"l": side, "s": side}
        if i == 0:
            det["r"] = [(0.08, 0.92, 0.35, 0.8, glass, TRAIN), (0.04, 0.14, 0.1, 0.18, (30, 30, 210), TRAIN),
                        (0.86, 0.96, 0.1, 0.18, (30, 30, 210), TRAIN)]
        if i == n - 1:
            det["f"] = [(0.06, 0.94, 0.35, 0.82, glass, TRAIN), (0.2, 0.8, 0.85, 0.95, (20, 150, 230), TRAIN),
                        (0.04, 0.14, 0.1, 0.18, (220, 220, 210), TRAIN),
                        (0.86, 0.96, 0.1, 0.18, (220, 220, 210), TRAIN)]
        m.box(g, a0, a1, -W / 2, W / 2, 0.35, H, _face_cols(col, light), TRAIN, details=det)
        if i < n - 1:
            m.box(g, a1 - 0.01, a1 + gap + 0.01, -W / 2 + 0.25, W / 2 - 0.25, 0.45, H - 0.15,
                  _face_cols(dark, (1, 1, 1, 1, 1)), TRAIN, top=False)
        if i == n // 2:
            m.box(g, a0 + 2.5, a0 + 3.3, -0.7, 0.7, H, H + 0.25, _face_cols(dark, (1, 1, 1, 1, 1)), TRAIN)
            m.line(g, [(a0 + 2.9, -0.05, H + 0.25), (a0 + 3.9, 0.0, H + 0.85), (a0 + 2.9, 0.05, H + 1.35)],
                   dark, TRAIN, 0.05)
            m.line(g, [(a0 + 2.9, -0.75, H + 1.35), (a0 + 2.9, 0.75, H + 1.35)], dark, TRAIN, 0.06)
    return m.finalize()


def _make_cycle(rng, kind, rider, light):
    """Bicycle or motorcycle (w = 0 plane) with an optional rider."""
    moto = kind == "motorcycle"
    cls = MOTO if moto else BIKE
    if moto:
        r, ax, L = rng.u(0.29, 0.34), rng.u(0.68, 0.78), 2.1
    else:
        r, ax, L = rng.u(0.31, 0.36), rng.u(0.5, 0.56), 1.75
    m = _Model(L, 0.7, 1.2, cls)
    g = m.group(0.0)
    tire = (22, 22, 24)
    frame = _paint(rng)
    hub_disc = (70, 70, 74) if moto else (105, 105, 108)
    for a in (-ax, ax):
        m.disc(g, a, r, r, 0.0, hub_disc, cls, n=14, ring=(tire, 0.09 if moto else 0.05))
    if moto:
        dark = (40, 40, 44)
        fc = _face_cols(frame, light)
        m.box(g, -0.25, 0.35, -0.17, 0.17, 0.28, 0.66, _face_cols(dark, light), cls)
        m.box(g, -0.05, 0.5, -0.18, 0.18, 0.62, 0.95, fc, cls)
        m.box(g, -0.62, -0.02, -0.15, 0.15, 0.7, 0.85, _face_cols((25, 25, 28), light), cls)
        m.box(g, -0.9, -0.55, -0.12, 0.12, 0.6, 0.82, fc, cls)
        m.line(g, [(0.48, 0.0, 0.98), (ax, 0.0, r)], (160, 160, 165), cls, 0.07)
        m.line(g, [(0.45, -0.38, 1.08), (0.45, 0.38, 1.08)], dark, cls, 0.05)
        m.line(g, [(-0.2, 0.2, 0.35), (-0.85, 0.2, 0.45)], (170, 170, 175), cls, 0.08)
        m.disc(g, 0.62, 0.95, 0.11, 0.0, (220, 230, 235), cls, n=8)
        hip, shoulder = (-0.35, 0.0, 0.95), (0.05, 0.0, 1.55)
        hands = [(0.42, -0.36, 1.1), (0.42, 0.36, 1.1)]
        feet = [(-0.05, -0.26, 0.42), (-0.05, 0.26, 0.42)]
        knees = [(0.2, -0.24, 0.78), (0.2, 0.24, 0.78)]
    else:
        w = 0.035
        rear, bb = (-ax, 0.0, r), (0.0, 0.0, r * 0.85)
        seat, head = (-0.2, 0.0, 0.9), (0.4, 0.0, 0.92)
        front = (ax, 0.0, r)
        m.line(g, [rear, bb, seat, rear], frame, cls, w)
        m.line(g, [bb, head, front], frame, cls, w)
        m.line(g, [seat, head], frame, cls, w)
        m.line(g, [(0.38, -0.28, 1.0), (0.38, 0.28, 1.0)], (40, 40, 40), cls, 0.035)
        m.line(g, [(-0.3, 0.0, 0.94), (-0.1, 0.0, 0.94)], (30, 30, 30), cls, 0.06)
        hip, shoulder = (-0.2, 0.0, 0.98), (0.12, 0.0, 1.55)
        hands = [(0.38, -0.27, 1.02), (0.38, 0.27, 1.02)]
        ph = rng.u(0, 2 * math.pi)
        feet = [(0.17 * math.cos(ph), -0.15, r * 0.85 + 0.17 * math.sin(ph)),
                (-0.17 * math.cos(ph), 0.15, r * 0.85 - 0.17 * math.sin(ph))]
        knees = [(0.18, -0.16, 0.62), (0.18, 0.16, 0.62)]
    if rider:
        cols = _person_cols(rng)
        kp = np.array([hip, shoulder, hands[0], hands[1], feet[0], feet[1], knees[0], knees[1]], np.float64)
        helmet = _paint(rng) if (moto or rng.chance(0.5)) else cols["hair"]
        m.rider = {"kp": kp, "legs": cols["bottom"], "top": cols["top"], "skin": cols["skin"], "helmet": helmet}
    return m.finalize()


# --------------------------------------------------------------------------- people

_SKINS = [(255, 220, 190), (235, 190, 160), (200, 150, 110), (150, 100, 70), (95, 65, 45)]
_HAIR = [(30, 25, 20), (80, 55, 35), (150, 110, 60), (200, 180, 130), (120, 120, 120), (60, 40, 30)]


def _person_cols(rng):
    top = _hsv(rng.u(0, 360), rng.u(0.0, 0.85), rng.u(0.12, 0.95))
    bottom = rng.pick([_bgr(40, 50, 80), _bgr(30, 30, 35), _bgr(90, 90, 95), _bgr(180, 170, 140),
                       _bgr(60, 70, 110), _hsv(rng.u(0, 360), rng.u(0.2, 0.8), rng.u(0.15, 0.7))])
    return {"skin": _jit(rng, _bgr(*rng.pick(_SKINS)), 10), "hair": _jit(rng, _bgr(*rng.pick(_HAIR)), 10),
            "top": top, "bottom": _jit(rng, bottom, 10), "shoe": _jit(rng, (30, 30, 32), 15)}


class _Person(object):
    """A pedestrian (screen-aligned billboard); walks along the sidewalk or crosses."""

    def __init__(self, rng, s, z, vz=0.0, cross=None):
        self.s0, self.z0, self.vz = s, z, vz
        self.h = rng.u(1.55, 1.95) if rng.chance(0.92) else rng.u(1.05, 1.4)
        self.sub = rng.getrandbits(31)
        self.cols = None
        self.phase0 = rng.u(0, 2 * math.pi)
        self.cross = cross   # (s_start, s_end, t_start, speed)
        self.radius = 0.5

    def state(self, t):
        if self.cross is None:
            moving = abs(self.vz) > 0.05
            return self.s0, self.z0 + self.vz * t, moving, False, 1.0, self.phase0 + abs(self.vz) * t * 4.2
        s0, s1, t0, v = self.cross
        T = abs(s1 - s0) / v
        k = min(max(t - t0, 0.0), T)
        moving = 0.0 < t - t0 < T
        direction = 1.0 if s1 > s0 else -1.0
        return s0 + direction * v * k, self.z0, moving, moving, direction, self.phase0 + v * k * 4.2

    def key(self, cv, t):
        s, z = self.state(t)[:2]
        xc, zc = cv.xz_cam(s, z)
        if zc < SPRITE_NEAR or zc > 0.8 * VIEW_FAR or not cv.visible(xc, zc, 1.0):
            return None
        return zc

    def draw(self, cv, world, t):
        s, z, moving, side, direction, phase = self.state(t)
        a = cv.anchor(s, z)
        if a is None:
            return
        if self.cols is None:
            rng = _R(self.sub)
            self.cols = _person_cols(rng)
            self.coat = rng.chance(0.22)
            self.bag = rng.chance(0.25)
            self.bag_col = _jit(rng, rng.pick([(30, 30, 30), (40, 60, 100), (120, 120, 120), (50, 40, 140)]), 15)
        _draw_person(cv, a, self.h, self.cols, moving, side, direction, phase, self.coat,
                     self.bag_col if self.bag else None)

    def shadow(self, cv, world, t):
        s, z = self.state(t)[:2]
        return [(s - 0.3, s + 0.3, z - 0.25, z + 0.25)]


def _seg(x0, y0, x1, y1, w):
    """A thick segment as a quad."""
    dx, dy = x1 - x0, y1 - y0
    n = math.hypot(dx, dy) or 1e-6
    ox, oy = -dy / n * w * 0.5, dx / n * w * 0.5
    return [(x0 + ox, y0 + oy), (x1 + ox, y1 + oy), (x1 - ox, y1 - oy), (x0 - ox, y0 - oy)]


def _draw_person(cv, a, h, cols, moving, side, direction, phase, coat, bag):
    """A pedestrian of height h: polygons in units of h, one transform, few OpenCV calls."""
    sc = a[2]
    cls = PERSON
    px = sc * h
    if px < 7:
        cv.sp_rect(a, -0.12 * h, 0.12 * h, 0, 0.95 * h, cols["top"], cls)
        return
    small = px < 22
    sw = math.sin(phase) if moving else 0.0
    top, bottom, skin, shoe = cols["top"], cols["bottom"], cols["skin"], cols["shoe"]
    low = 0.3 if coat else 0.48
    stages = []
    ells = []     # (x, y, rx, ry, colour)
    if side:
        d = direction
        st = 0.17 * sw * d
        stages.append((bottom, [_seg(0.0, 0.5, st, 0.03, 0.075), _seg(0.0, 0.5, -st, 0.03, 0.075)]))
        if not small:
            stages.append((shoe, [_seg(st, 0.02, st + 0.06 * d, 0.02, 0.045),
                                  _seg(-st, 0.02, -st + 0.06 * d, 0.02, 0.045)]))
        stages.append((top, [[(-0.075, 0.8), (0.075, 0.8), (0.07, low), (-0.07, low)],
                             _seg(0.0, 0.78, -0.13 * sw * d, 0.47, 0.05)]))
        if bag is not None and not small:
            x0 = -0.13 * d - 0.04
            stages.append((bag, [[(x0, 0.55), (x0 + 0.08, 0.55), (x0 + 0.08, 0.75), (x0, 0.75)]]))
    else:
        ll = 0.05 * max(0.0, sw)
        lr = 0.05 * max(0.0, -sw)
        stages.append((bottom, [[(-0.1, 0.5), (-0.01, 0.5), (-0.025, ll), (-0.085, ll)],
                                [(0.01, 0.5), (0.1, 0.5), (0.085, lr), (0.025, lr)]]))
        if not small:
            stages.append((shoe, [[(-0.09, ll), (-0.02, ll), (-0.02, ll + 0.03), (-0.09, ll + 0.03)],
                                  [(0.02, lr), (0.09, lr), (0.09, lr + 0.03), (0.02, lr + 0.03)]]))
        wl = 0.115 if coat else 0.1
        swing = 0.02 * sw
        stages.append((top, [[(-0.125, 0.81), (0.125, 0.81), (wl, low), (-wl, low)],
                             [(-0.165, 0.8), (-0.125, 0.8), (-0.115 + swing, 0.47), (-0.155 + swing, 0.47)],
                             [(0.125, 0.8), (0.165, 0.8), (0.155 - swing, 0.47), (0.115 - swing, 0.47)]]))
        if not small:
            ells.append((-0.135 + swing, 0.46, 0.02, 0.025, skin))
            ells.append((0.135 - swing, 0.46, 0.02, 0.025, skin))
            if bag is not None:
                stages.append((bag, [[(0.15, 0.42), (0.23, 0.42), (0.23, 0.58), (0.15, 0.58)]]))
    stages.append((skin, [[(-0.025, 0.79), (0.025, 0.79), (0.025, 0.86), (-0.025, 0.86)]]))
    ells.append((0.0, 0.915, 0.055, 0.066, skin))
    if not small:
        ells.append((0.0, 0.94, 0.056, 0.045, cols["hair"]))
    # transform everything at once
    counts = [len(p) for _, polys in stages for p in polys]
    P = np.array([pt for _, polys in stages for p in polys for pt in p], np.float64)
    k = sc * h
    P[:, 0] = a[0] + k * P[:, 0]
    P[:, 1] = a[1] - k * P[:, 1]
    if P[:, 0].max() < 0 or P[:, 0].min() > cv.W or P[:, 1].max() < 0 or P[:, 1].min() > cv.H:
        return
    np.clip(P, -_LIM, _LIM, out=P)
    IP = (P * _ONE).round().astype(np.int32)
    polys = []
    i = 0
    for n in counts:
        polys.append(IP[i:i + n])
        i += n
    cv2.fillPoly(cv.lab, polys, cls, _LINE, _SHIFT)
    i = 0
    for col, ps in stages:
        cv2.fillPoly(cv.img, polys[i:i + len(ps)], col, _LINE, _SHIFT)
        i += len(ps)
    for x, y, rx, ry, col in ells:
        cv.px_ellipse(a[0] + k * x, a[1] - k * y, k * rx, k * ry, col, cls)


def _vehicle_dims(rng, kind):
    """The few parameters a stream needs before a model is built (length, width)."""
    if kind == "car":
        return {"L": rng.u(3.6, 4.9), "W": rng.u(1.65, 1.95),
                "H": rng.u(1.35, 1.75) if rng.chance(0.85) else rng.u(1.8, 2.3)}   # some vans / SUVs
    if kind == "truck":
        return {"L": rng.u(6.5, 10.5), "W": rng.u(2.3, 2.55)}
    if kind == "bus":
        return {"L": rng.u(10.5, 13.5) if rng.chance(0.8) else rng.u(15.0, 18.0), "W": rng.u(2.45, 2.55)}
    if kind == "tram":
        n, seg = rng.ri(2, 4), rng.u(7.0, 9.5)
        return {"n": n, "seg": seg, "gap": 0.5, "L": n * seg + (n - 1) * 0.5, "W": rng.u(2.3, 2.65)}
    if kind == "motorcycle":
        return {"L": 2.1, "W": 0.8}
    return {"L": 1.75, "W": 0.6}


_NOLIGHT = (1.0, 1.0, 1.0, 1.0, 1.0)
# models are built from a finite set of templates per kind (world independent; shading is
# applied when drawing), cached in a bounded dict: building one costs about a millisecond
_TEMPLATES = {"car": 768, "truck": 192, "bus": 192, "tram": 96, "bicycle": 192, "motorcycle": 192}
_MODEL_CACHE = {}
_MODEL_ORDER = []
_DIMS_CACHE = {}


def _template_dims(kind, tid):
    key = (kind, tid)
    dims = _DIMS_CACHE.get(key)
    if dims is None:
        if len(_DIMS_CACHE) > 20000:
            _DIMS_CACHE.clear()
        dims = _DIMS_CACHE[key] = _vehicle_dims(_R(_seed("template-dims", kind, tid)), kind)
    return dims


def _template_model(kind, tid, rider):
    key = (kind, tid, bool(rider))
    model = _MODEL_CACHE.get(key)
    if model is None:
        rng = _R(_seed("template", kind, tid, bool(rider)))
        dims = _template_dims(kind, tid)
        if kind == "car":
            model = _make_car(rng, _NOLIGHT, dims)
        elif kind == "truck":
            model = _make_truck(rng, _NOLIGHT, dims)
        elif kind == "bus":
            model = _make_bus(rng, _NOLIGHT, dims)
        elif kind == "tram":
            model = _make_tram(rng, _NOLIGHT, dims)
        else:
            model = _make_cycle(rng, kind, rider, _NOLIGHT)
        _MODEL_CACHE[key] = model
        _MODEL_ORDER.append(key)
        if len(_MODEL_ORDER) > 2500:
            _MODEL_CACHE.pop(_MODEL_ORDER.pop(0), None)
    return model


class _Spec(object):
    """A vehicle / cycle: a template id (the model is built on first use and cached)."""

    def __init__(self, rng, kind, rider=False):
        self.kind, self.rider = kind, bool(rider)
        self.tid = rng.ri(0, _TEMPLATES[kind] - 1)
        self.dims = _template_dims(kind, self.tid)
        self.length, self.width = self.dims["L"], self.dims["W"]

    def model(self):
        return _template_model(self.kind, self.tid, self.rider)


class _Mover(object):
    """A part model (vehicle / cycle) moving along the road or crossing it."""

    def __init__(self, model, s, z, vz=0.0, heading=0.0, vs=0.0, cross=None):
        self.model, self.s0, self.z0, self.vz, self.heading, self.vs = model, s, z, vz, heading, vs
        self.cross = cross
        self.radius = 0.5 * max(model.length, model.width) + 0.5

    def pos(self, t):
        if self.cross is not None:
            s0, s1, t0, v = self.cross
            T = abs(s1 - s0) / v
            k = min(max(t - t0, 0.0), T)
            return s0 + (v * k if s1 > s0 else -v * k), self.z0
        return self.s0 + self.vs * t, self.z0 + self.vz * t

    def key(self, cv, t):
        s, z = self.pos(t)
        xc, zc = cv.xz_cam(s, z)
        if zc > VIEW_FAR + self.radius or not cv.visible(xc, zc, self.radius):
            return None
        if zc > self.radius + 1.0:
            return zc - 0.5 * self.model.length * abs(math.cos(self.heading)) - \
                0.5 * self.model.width * abs(math.sin(self.heading))
        # near the camera: nearest footprint corner
        m = self.model
        H = self.heading + cv.road.theta(z)
        best = 1e9
        for da in (-0.5, 0.5):
            for dw in (-0.5, 0.5):
                a, w = da * m.length, dw * m.width
                ss = s + a * math.sin(H) + w * math.cos(H)
                zz = z + a * math.cos(H) - w * math.sin(H)
                best = min(best, cv.zc_of(ss, zz))
        return best

    def draw(self, cv, world, t):
        s, z = self.pos(t)
        _draw_model(cv, self.model.model(), s, z, self.heading, world.box_light(self.heading))

    def shadow(self, cv, world, t):
        s, z = self.pos(t)
        m = self.model
        hl = 0.5 * (m.length * abs(math.cos(self.heading)) + m.width * abs(math.sin(self.heading))) + 0.1
        hw = 0.5 * (m.width * abs(math.cos(self.heading)) + m.length * abs(math.sin(self.heading))) + 0.1
        return [(s - hw, s + hw, z - hl, z + hl)]


# --------------------------------------------------------------------------- poles, signs, lights, trees

_SIGN_STYLES = ("prohibit", "mandatory", "warning", "yield", "stop", "info", "direction", "priority")


def _make_sign(rng):
    style = rng.pick(_SIGN_STYLES)
    size = rng.u(0.6, 0.9)
    red, white, blue = _bgr(200, 25, 30), _bgr(240, 240, 238), _bgr(20, 70, 170)
    yellow, green = _bgr(245, 200, 20), _bgr(20, 120, 60)
    if style == "prohibit":
        return {"shape": "circle", "size": size, "border": red, "face": white, "sym": _bgr(30, 30, 30)}
    if style == "mandatory":
        return {"shape": "circle", "size": size, "border": blue, "face": blue, "sym": white}
    if style == "warning":
        return {"shape": "triangle", "size": size * 1.1, "border": red, "face": white, "sym": _bgr(30, 30, 30)}
    if style == "yield":
        return {"shape": "vtriangle", "size": size * 1.1, "border": red, "face": white, "sym": None}
    if style == "stop":
        return {"shape": "octagon", "size": size, "border": white, "face": red, "sym": white}
    if style == "priority":
        return {"shape": "diamond", "size": size, "border": white, "face": yellow, "sym": None}
    if style == "info":
        return {"shape": "rect", "size": size, "aspect": rng.u(0.8, 1.3), "border": white, "face": blue,
                "sym": white}
    face = rng.pick([blue, green, yellow, white])
    return {"shape": "rect", "size": size * rng.u(1.2, 2.2), "aspect": rng.u(0.35, 0.6), "border": white,
            "face": face, "sym": white if face != white else _bgr(30, 30, 30)}


def _sign_polys(shape, size, aspect=1.0, cx=0.0, cy=0.0, k=1.0):
    r = 0.5 * size * k
    if shape == "triangle":
        return [(cx - r, cy - 0.5 * r), (cx + r, cy - 0.5 * r), (cx, cy + 1.1 * r)]
    if shape == "vtriangle":
        return [(cx - r, cy + 0.5 * r), (cx + r, cy + 0.5 * r), (cx, cy - 1.1 * r)]
    if shape == "octagon":
        ang = np.linspace(0, 2 * math.pi, 8, endpoint=False) + math.pi / 8
        return list(zip(cx + r * np.cos(ang), cy + r * np.sin(ang)))
    if shape == "diamond":
        return [(cx - r, cy), (cx, cy - r), (cx + r, cy), (cx, cy + r)]
    if shape == "rect":
        hh = r * aspect
        return [(cx - r, cy - hh), (cx + r, cy - hh), (cx + r, cy + hh), (cx - r, cy + hh)]
    return None


def _draw_sign(cv, a, sign, x, y):
    shape, size = sign["shape"], sign["size"]
    if shape == "circle":
        r = 0.5 * size
        cv.sp_ellipse(a, x, y, r, r, sign["border"], SIGN)
        if a[2] * r > 3:
            cv.sp_ellipse(a, x, y, r * 0.78, r * 0.78, sign["face"], None)
            if sign["sym"] is not None:
                cv.sp_rect(a, x - r * 0.45, x + r * 0.45, y - r * 0.12, y + r * 0.12, sign["sym"], None)
        return
    aspect = sign.get("aspect", 1.0)
    cv.sp_poly(a, _sign_polys(shape, size, aspect, x, y), sign["border"], SIGN)
    if a[2] * size > 6:
        cv.sp_poly(a, _sign_polys(shape, size, aspect, x, y, 0.8), sign["face"], None)
        if sign["sym"] is not None:
            r = 0.5 * size
            cv.sp_rect(a, x - r * 0.4, x + r * 0.4, y - r * 0.1 * aspect, y + r * 0.1 * aspect, sign["sym"], None)


def _make_light(rng):
    housing = rng.pick([(25, 25, 25), (30, 35, 30), (20, 20, 22), _bgr(230, 190, 30), (60, 60, 60)])
    state = rng.ri(0, 2)
    return {"w": rng.u(0.34, 0.44), "h": rng.u(0.95, 1.15), "housing": housing, "state": state,
            "plate": rng.chance(0.45), "back": rng.chance(0.12), "n": 3 if rng.chance(0.85) else 2}


def _draw_light(cv, a, light, x, y_top):
    w, h = light["w"], light["h"]
    if light["plate"]:
        cv.sp_rect(a, x - w * 0.85, x + w * 0.85, y_top - h - 0.08, y_top + 0.08, (20, 20, 20), LIGHT)
    cv.sp_rect(a, x - w / 2, x + w / 2, y_top - h, y_top, light["housing"], LIGHT)
    if light["back"] or a[2] * w < 4:
        return
    n = light["n"]
    lit = [_bgr(255, 40, 30), _bgr(255, 190, 20), _bgr(40, 255, 140)]
    for i in range(n):
        yy = y_top - h * (i + 0.5) / n
        on = (i == light["state"]) or (n == 2 and i == min(1, light["state"]))
        col = lit[i if n == 3 else (0 if i == 0 else 2)] if on else (55, 55, 55)
        cv.sp_ellipse(a, x, yy, w * 0.32, w * 0.32, col, None)


class _Pole(object):
    """A pole with optional arm, lamp head, traffic signs and traffic lights."""

    def __init__(self, rng, s, z, side, kind, road_width):
        self.s, self.z, self.side, self.kind = s, z, side, kind
        self.col = _jit(rng, rng.pick([(150, 150, 150), (100, 100, 100), (60, 70, 60), (170, 170, 165),
                                       (50, 50, 55), (120, 110, 100)]), 12)
        self.w = rng.u(0.14, 0.3)
        self.signs = []
        self.lights = []
        self.arm = None
        self.lamp = None
        inward = -side   # towards the road centre (screen direction roughly)
        if kind == "lamp":
            self.h = rng.u(6.5, 9.5)
            self.arm = (inward * rng.u(1.0, 2.5), self.h - 0.2)
            self.lamp = rng.pick([(200, 200, 200), (90, 90, 90), self.col])
            if rng.chance(0.3):
                self.signs.append((_make_sign(rng), 0.0, rng.u(2.2, 3.0)))
        elif kind == "sign":
            self.h = rng.u(2.6, 3.6)
            self.w = rng.u(0.08, 0.14)
            y = self.h - 0.4
            for _ in range(rng.ri(1, 2)):
                sign = _make_sign(rng)
                self.signs.append((sign, 0.0, y))
                y -= sign["size"] * 1.15 + 0.05
        elif kind == "light":
            self.h = rng.u(3.3, 4.3)
            self.w = rng.u(0.12, 0.2)
            self.lights.append((_make_light(rng), 0.0, self.h + 0.05))
            if rng.chance(0.5):
                self.lights.append((_make_light(rng), 0.0, 2.6))
            if rng.chance(0.35):
                self.signs.append((_make_sign(rng), 0.0, 2.1))
        elif kind == "mast":
            self.h = rng.u(5.8, 7.0)
            self.w = rng.u(0.2, 0.32)
            reach = min(road_width * rng.u(0.35, 0.8), 8.0)
            self.arm = (inward * reach, self.h - 0.3)
            for frac in (0.55, 1.0) if rng.chance(0.6) else (1.0,):
                self.lights.append((_make_light(rng), inward * reach * frac, self.h - 0.35))
            self.lights.append((_make_light(rng), 0.0, 3.4))
            if rng.chance(0.5):
                self.signs.append((_make_sign(rng), inward * reach * 0.3, self.h - 0.9))
        else:
            self.h = rng.u(2.5, 7.0)
        self.radius = 9.0 if self.arm else 1.0

    def key(self, cv, t):
        xc, zc = cv.xz_cam(self.s, self.z)
        if zc < SPRITE_NEAR or zc > VIEW_FAR or not cv.visible(xc, zc, self.radius):
            return None
        return zc - 0.05

    def draw(self, cv, world, t):
        a = cv.anchor(self.s, self.z)
        if a is None:
            return
        if self.arm is not None:
            ax, ay = self.arm
            cv.sp_line(a, 0.0, ay, ax, ay + 0.25, 0.12, self.col, POLE, 1.0)
            if self.lamp is not None:
                cv.sp_rect(a, ax - 0.35 if ax > 0 else ax - 0.25, ax + 0.25 if ax > 0 else ax + 0.35,
                           ay + 0.05, ay + 0.3, self.lamp, POLE)
        cv.sp_rect(a, -self.w / 2, self.w / 2, 0.0, self.h, self.col, POLE, min_px=2.0)
        for light, x, y in self.lights:
            if x != 0.0:
                cv.sp_line(a, x, y, x, y + 0.3, 0.05, self.col, POLE, 1.0)
            _draw_light(cv, a, light, x, y)
        for sign, x, y in self.signs:
            _draw_sign(cv, a, sign, x, y)

    def shadow(self, cv, world, t):
        return None


def _veg_color(rng, world):
    h, s, v = world.veg_hsv
    return _hsv(h + rng.u(-12, 12), s + rng.u(-0.12, 0.12), v + rng.u(-0.12, 0.12))


_TREE_TEMPLATES = {}
_SPECKLE_LEVELS = (0.62, 0.82, 1.18, 1.36)


def _tree_template(tid):
    """Crown shape of tree template ``tid``: ellipses and leaf speckles in units of the crown radius."""
    tpl = _TREE_TEMPLATES.get(tid)
    if tpl is None:
        rng = _R(_seed("tree-template", tid))
        ell = []
        for i in range(rng.ri(4, 7)):
            ang = rng.u(0, 2 * math.pi)
            d = rng.u(0.0, 0.55) if i else 0.0
            rx = rng.u(0.45, 0.8)
            ry = rx * rng.u(0.75, 1.15)
            ell.append((math.cos(ang) * d, math.sin(ang) * d * 0.8, rx, ry))
        spk = []
        for i in range(rng.ri(9, 15)):
            ex, ey, rx, ry = rng.pick(ell)
            ang = rng.u(0, 2 * math.pi)
            d = rng.u(0, 0.55)
            spk.append((ex + math.cos(ang) * d * rx, ey + math.sin(ang) * d * ry, min(rx, ry) * rng.u(0.12, 0.3),
                        rng.ri(0, len(_SPECKLE_LEVELS) - 1)))
        ell, spk = np.array(ell), np.array(spk)
        allp = np.concatenate([ell, np.stack([spk[:, 0], spk[:, 1], spk[:, 2], spk[:, 2]], 1)], 0)
        tpl = _TREE_TEMPLATES[tid] = (ell, spk, allp)
    return tpl


class _Tree(object):
    """A tree or bush: trunk + crown of ellipses with leaf speckles (all vegetation)."""

    def __init__(self, rng, world, s, z, big=1.0, bush=False):
        self.s, self.z = s, z
        if bush:
            self.trunk_h, self.trunk_w = 0.0, 0.0
            R = rng.u(0.6, 1.5) * big
            cy = R * 0.7
        else:
            self.trunk_h = rng.u(1.8, 4.0) * big
            self.trunk_w = rng.u(0.22, 0.45) * big
            R = rng.u(1.6, 3.6) * big
            cy = self.trunk_h + R * rng.u(0.6, 0.9)
        self.R = R
        self.cy = cy
        self.tid = rng.ri(0, 511)
        self.trunk_col = _jit(rng, rng.pick([(40, 55, 70), (60, 70, 80), (35, 40, 45), (80, 90, 100)]), 10)
        self.col = _veg_color(rng, world)
        self.radius = R * 1.6

    def key(self, cv, t):
        xc, zc = cv.xz_cam(self.s, self.z)
        if zc < SPRITE_NEAR or zc > VIEW_FAR * 1.3 or not cv.visible(xc, zc, self.radius):
            return None
        return zc

    def draw(self, cv, world, t):
        a = cv.anchor(self.s, self.z)
        if a is None:
            return
        u0, vg, sc = a[0], a[1], a[2]
        R = self.R
        if self.trunk_h > 0:
            cv.sp_rect(a, -self.trunk_w / 2, self.trunk_w / 2, 0.0, self.trunk_h + R * 0.5, self.trunk_col,
                       VEG, min_px=1.0)
        ell, spk, allp = _tree_template(self.tid)
        k = sc * R
        vc = vg - sc * self.cy
        n = len(ell) + (len(spk) if k > 9 else 0)
        E = allp[:n]
        U = u0 + k * E[:, 0]
        V = vc - k * E[:, 1]
        AX = k * E[:, 2]
        AY = k * E[:, 3]
        if U.max() + AX.max() < 0 or U.min() - AX.max() > cv.W or V.max() + AY.max() < 0:
            return
        cu = (U * _ONE).round().astype(np.int64).tolist()
        cvv = (V * _ONE).round().astype(np.int64).tolist()
        ax = np.maximum(1, (AX * _ONE).round()).astype(np.int64).tolist()
        ay = np.maximum(1, (AY * _ONE).round()).astype(np.int64).tolist()
        img, lab = cv.img, cv.lab
        col = self.col
        for i in range(len(ell)):
            cv2.ellipse(img, (cu[i], cvv[i]), (ax[i], ay[i]), 0, 0, 360, col, -1, _LINE, _SHIFT)
            cv2.ellipse(lab, (cu[i], cvv[i]), (ax[i], ay[i]), 0, 0, 360, VEG, -1, _LINE, _SHIFT)
        if n > len(ell):
            cols = [_scale(col, f) for f in _SPECKLE_LEVELS]
            levels = spk[:, 3].astype(int).tolist()
            for j in range(len(ell), n):
                cv2.ellipse(img, (cu[j], cvv[j]), (ax[j], ay[j]), 0, 0, 360, cols[levels[j - len(ell)]], -1,
                            _LINE, _SHIFT)

    def shadow(self, cv, world, t):
        if not world.sunny:
            return None
        r = self.R * 0.75
        k = self.cy / max(0.35, world.sun[2])
        ds, dz = -world.sun[0] * k, -world.sun[1] * k
        n = math.hypot(ds, dz)
        if n > 6.0:
            ds, dz = ds * 6.0 / n, dz * 6.0 / n
        return [(self.s + ds - r, self.s + ds + r, self.z + dz - r, self.z + dz + r)]


# --------------------------------------------------------------------------- outliers

def _outlier_patch(rng, size=96, info=None):
    """An object of none of the 19 classes: (patch BGR, alpha 0/255), cropped to its extent.

    ``info`` (a dict) receives the drawn ``shape`` and ``texture``: the ground-truth kind
    rt-eval breaks outlier AP down by. Recording them draws nothing from ``rng``, so
    every image stays byte-identical.
    """
    S = int(size)
    alpha = np.zeros((S, S), np.uint8)
    shape = rng.pick(("blob", "animal", "boxes", "ring", "star", "blob"))
    if info is not None:
        info["shape"] = shape
    c = S / 2.0
    if shape == "blob" or shape == "star":
        n = rng.ri(7, 14)
        ang = np.sort(np.array([rng.u(0, 2 * math.pi) for _ in range(n)]))
        rad = np.array([rng.u(0.45, 1.0) if (shape == "blob" or i % 2 == 0) else rng.u(0.15, 0.4)
                        for i in range(n)]) * S * 0.48
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang) * rng.u(0.5, 1.0)], 1)
        cv2.fillPoly(alpha, [np.round(pts).astype(np.int32)], 255, _LINE)
    elif shape == "animal":
        by = S * rng.u(0.35, 0.5)
        bl, bh = S * rng.u(0.25, 0.35), S * rng.u(0.12, 0.2)
        cv2.ellipse(alpha, (int(c), int(by)), (int(bl), int(bh)), 0, 0, 360, 255, -1, _LINE)
        hx = int(c + bl * rng.pick((-1, 1)) * 1.05)
        cv2.ellipse(alpha, (hx, int(by - bh)), (int(bh * 0.8), int(bh * 0.6)), 0, 0, 360, 255, -1, _LINE)
        leg_w = max(2, int(S * 0.04))
        for fx in (-0.7, -0.45, 0.45, 0.7):
            x = int(c + bl * fx)
            cv2.line(alpha, (x, int(by)), (x + int(rng.u(-3, 3)), int(S * 0.95)), 255, leg_w, _LINE)
        cv2.line(alpha, (int(c - bl * math.copysign(1, hx - c)), int(by)),
                 (int(c - bl * 1.5 * math.copysign(1, hx - c)), int(by - bh * rng.u(-1, 1.5))), 255,
                 max(2, leg_w // 2), _LINE)
    elif shape == "boxes":
        for _ in range(rng.ri(1, 3)):
            w, h = S * rng.u(0.2, 0.5), S * rng.u(0.2, 0.6)
            x, y = rng.u(0.05, 0.95) * S - w / 2, S - h - rng.u(0, 0.3) * S
            ang = rng.u(-30, 30)
            box = cv2.boxPoints(((x + w / 2, y + h / 2), (w, h), ang))
            cv2.fillPoly(alpha, [np.round(box).astype(np.int32)], 255, _LINE)
    else:
        r = S * rng.u(0.3, 0.46)
        cv2.circle(alpha, (int(c), int(c)), int(r), 255, max(3, int(r * rng.u(0.25, 0.5))), _LINE)
    ys, xs = np.nonzero(alpha)
    if len(ys) == 0:
        alpha[S // 4:3 * S // 4, S // 4:3 * S // 4] = 255
        ys, xs = np.nonzero(alpha)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    alpha = alpha[y0:y1, x0:x1].copy()
    h, w = alpha.shape
    patch = _odd_texture(rng, h, w, info)
    patch[alpha == 0] = 0
    return patch, alpha


def _odd_color(rng):
    return _hsv(rng.u(0, 360), rng.u(0.75, 1.0), rng.u(0.75, 1.0))


def _odd_texture(rng, h, w, info=None):
    kind = rng.pick(("checker", "stripes", "noise", "solid", "dots", "gradient"))
    if info is not None:
        info["texture"] = kind
    a, b = _odd_color(rng), _odd_color(rng)
    if rng.chance(0.3):
        b = rng.pick([(0, 0, 0), (255, 255, 255)])
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == "checker":
        p = max(2, int(rng.u(3, 12)))
        m = ((yy // p + xx // p) % 2).astype(bool)
    elif kind == "stripes":
        ang = rng.u(0, math.pi)
        p = rng.u(3, 10)
        m = (np.floor((xx * math.cos(ang) + yy * math.sin(ang)) / p) % 2).astype(bool)
    elif kind == "noise":
        nr = _np_rng(rng.getrandbits(31))
        small = nr.randint(0, 256, (max(2, h // 4), max(2, w // 4), 3)).astype(np.uint8)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    elif kind == "dots":
        m = np.zeros((h, w), bool)
        nr = _np_rng(rng.getrandbits(31))
        m[nr.rand(h, w) < 0.04] = True
        m = cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    elif kind == "gradient":
        t = (xx / float(max(1, w - 1)))[..., None]
        return (np.array(a, np.float32) * (1 - t) + np.array(b, np.float32) * t).astype(np.uint8)
    else:
        m = np.zeros((h, w), bool)
    out = np.empty((h, w, 3), np.uint8)
    out[:] = a
    out[m] = b
    return out


def outlier_object(seed, index=0, size=96):
    """A standalone outlier (object of none of the 19 classes) to paste into images.

    Returns (patch_bgr uint8 h x w x 3, alpha uint8 h x w with 255 inside, 0 outside);
    deterministic in (seed, index); the longer side is about ``size`` pixels.
    """
    rng = _R(_seed(int(seed), "outlier-object", int(index)))
    return _outlier_patch(rng, size)


class _Outlier(object):
    """An outlier object standing on the road / sidewalk (billboard with an alpha mask)."""

    def __init__(self, rng, s, z, ident=1, on_road=False):
        self.s, self.z = s, z
        self.ident = int(ident)   # its value in the instance map (1, 2, 3)
        self.info = {"id": self.ident, "on_road": bool(on_road)}
        self.patch, self.alpha = _outlier_patch(rng, 96, self.info)
        h, w = self.alpha.shape
        self.wm = rng.u(0.5, 2.2)
        self.hm = self.wm * h / float(w)
        if self.hm > 2.2:
            self.wm *= 2.2 / self.hm
            self.hm = 2.2
        self.radius = self.wm

    def key(self, cv, t):
        xc, zc = cv.xz_cam(self.s, self.z)
        if zc < SPRITE_NEAR or zc > VIEW_FAR or not cv.visible(xc, zc, self.radius):
            return None
        return zc

    def draw(self, cv, world, t):
        a = cv.anchor(self.s, self.z)
        if a is None:
            return
        w = int(round(self.wm * a[2]))
        h = int(round(self.hm * a[2]))
        if w < 2 or h < 2 or w > 4 * cv.W:
            return
        x0 = int(round(a[0] - w / 2.0))
        y0 = int(round(a[1] - h))
        patch = cv2.resize(self.patch, (w, h), interpolation=cv2.INTER_NEAREST)
        alpha = cv2.resize(self.alpha, (w, h), interpolation=cv2.INTER_NEAREST) > 0
        X0, Y0, X1, Y1 = max(0, x0), max(0, y0), min(cv.W, x0 + w), min(cv.H, y0 + h)
        if X1 <= X0 or Y1 <= Y0:
            return
        sub_a = alpha[Y0 - y0:Y1 - y0, X0 - x0:X1 - x0]
        cv.img[Y0:Y1, X0:X1][sub_a] = patch[Y0 - y0:Y1 - y0, X0 - x0:X1 - x0][sub_a]
        cv.lab[Y0:Y1, X0:X1][sub_a] = _OUT_TMP
        if cv.inst is None:
            cv.inst = np.zeros((cv.H, cv.W), np.uint8)
        cv.inst[Y0:Y1, X0:X1][sub_a] = self.ident
        self.info["distance_m"] = round(float(a[3]), 2)

    def shadow(self, cv, world, t):
        return [(self.s - self.wm * 0.5, self.s + self.wm * 0.5, self.z - 0.3, self.z + 0.3)]


# --------------------------------------------------------------------------- the world

_BUILDING_COLORS = [(205, 192, 165), (225, 222, 214), (150, 150, 152), (95, 95, 100), (150, 82, 62),
                    (172, 72, 60), (212, 182, 112), (160, 180, 200), (160, 190, 160), (212, 172, 168),
                    (122, 92, 72), (172, 166, 156), (240, 235, 220), (190, 140, 100), (110, 120, 135)]
_ROOF_COLORS = [(150, 60, 45), (90, 90, 95), (60, 60, 65), (120, 80, 60)]
_WALL_COLORS = [(160, 158, 150), (190, 180, 160), (120, 118, 112), (150, 90, 70), (210, 205, 195),
                (100, 100, 105), (175, 160, 130)]
_GROUND_Z = np.array([-8.0, -4.0, -2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.5, 6.0, 8.0, 10.0, 13.0, 16.0, 20.0,
                      25.0, 30.0, 37.0, 45.0, 55.0, 67.0, 80.0, 95.0, 115.0, 140.0, 170.0, 210.0, 260.0,
                      330.0, 420.0])

# texture amplitudes per class: (patchy low/mid-frequency, fine grain)
_TEX_A = np.zeros(256, np.float32)
_TEX_B = np.zeros(256, np.float32)
for _cls, _a, _b in ((ROAD, 0.07, 0.05), (SIDEWALK, 0.08, 0.07), (BUILDING, 0.06, 0.05), (WALL, 0.1, 0.08),
                     (FENCE, 0.05, 0.06), (POLE, 0.03, 0.03), (LIGHT, 0.02, 0.02), (SIGN, 0.02, 0.02),
                     (VEG, 0.22, 0.22), (TERRAIN, 0.16, 0.14), (SKY, 0.02, 0.006), (PERSON, 0.03, 0.04),
                     (RIDER, 0.03, 0.04), (CAR, 0.03, 0.025), (TRUCK, 0.04, 0.03), (BUS, 0.03, 0.025),
                     (TRAIN, 0.03, 0.025), (MOTO, 0.03, 0.03), (BIKE, 0.03, 0.03), (_OUT_TMP, 0.0, 0.03),
                     (_HOOD_TMP, 0.02, 0.01)):
    _TEX_A[_cls] = _a
    _TEX_B[_cls] = _b
_GROUND_F = np.zeros(256, np.float32)   # ground classes receive shadows (scaled for 0..255 shade values)
_GROUND_F[[ROAD, SIDEWALK, TERRAIN]] = 1.0 / 255.0


class _World(object):
    """Everything about one drive: camera, road layout, style, lighting, traffic streams."""

    def __init__(self, wseed, size, outliers=False, kind="image"):
        rng = _R(wseed)
        self.seed = wseed
        self.size = (int(size[0]), int(size[1]))
        self.kind = kind
        H, W = self.size
        self._cache = {}
        self._cache_order = []
        self._lights = {}
        self._sky = None
        # camera ---------------------------------------------------------------
        self.f = W * rng.u(0.95, 1.15)
        self.cx = W * (0.5 + rng.u(-0.02, 0.02))
        self.v0 = H * rng.u(0.36, 0.47)
        self.cam_h = rng.u(1.25, 1.65)
        self.urban = rng.random()
        # road curvature (heading amplitude in rad)
        amp = 0.0 if rng.chance(0.4) else rng.u(0.01, 0.07) * rng.pick((-1, 1))
        self.road = _Road(amp, rng.u(250.0, 700.0), rng.u(0, 2 * math.pi))
        self._style(rng)
        self._layout(rng)
        # ego motion
        if kind == "video":
            self.v_ego = rng.u(7.0, 12.0)
        elif rng.chance(0.08):
            self.v_ego = rng.u(0.0, 1.0)
        else:
            self.v_ego = rng.u(3.0, 14.0)
        self.wob_a = rng.u(0.0, 0.3)
        self.wob_w = 2 * math.pi / rng.u(3.0, 9.0)
        self.wob_p = rng.u(0, 2 * math.pi)
        self.yaw0 = rng.u(-0.025, 0.025)
        self._streams(rng)
        self.hood = None
        if kind != "video" and rng.chance(0.2):
            self.hood = (H * rng.u(0.05, 0.13), H * rng.u(0.03, 0.08), _jit(rng, _paint(rng), 10))
        # outliers (only near the start of the drive)
        self.extra = []
        if outliers:
            orng = _R(_seed(wseed, "outliers"))
            for i in range(orng.ri(1, 3)):
                z = orng.u(7.0, 32.0)
                spread = min(z * 0.3, self.s_lot[1] - 0.5)
                s = self.cam_s + orng.u(-spread, spread)
                s = min(max(s, self.s_lot[0] + 0.6), self.s_lot[1] - 0.6)
                self.extra.append(_Outlier(orng, s, z, ident=i + 1,
                                           on_road=self.s_road[0] <= s <= self.s_road[1]))
        # textures and sensor (fixed for the whole drive, so sequences are coherent)
        trng = _R(_seed(wseed, "texture"))
        smooth = _smooth_bank(H, W)
        oy, ox = trng.ri(0, smooth.shape[0] - H), trng.ri(0, smooth.shape[1] - W)
        self.tex_a = smooth[oy:oy + H, ox:ox + W]
        grain = _sensor_bank(H, W)
        oy, ox = trng.ri(0, grain.shape[0] - H), trng.ri(0, grain.shape[1] - W)
        self.tex_b = grain[oy:oy + H, ox:ox + W, trng.ri(0, 2)]

    # style -------------------------------------------------------------------
    def _style(self, rng):
        self.sunny = rng.chance(0.55)
        az = rng.u(0, 2 * math.pi)
        el = rng.u(0.35, 1.1)
        self.sun = (math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el))
        self.amb = rng.u(0.55, 0.7) if self.sunny else rng.u(0.75, 0.88)
        self.dif = 1.05 - self.amb
        v = rng.u(70, 128)
        self.road_col = _jit(rng, (v + rng.u(-4, 8), v, v + rng.u(-6, 4)), 3)
        sw = rng.pick(("grey", "grey", "red", "beige", "dark"))
        self.sidewalk_col = _jit(rng, {"grey": (170, 170, 168), "red": _bgr(172, 128, 118),
                                       "beige": _bgr(195, 182, 158), "dark": (125, 125, 128)}[sw], 14)
        self.curb_col = _jit(rng, (185, 185, 182), 12)
        t = rng.random()
        if t < 0.6:
            self.terrain_col = _hsv(rng.u(70, 105), rng.u(0.35, 0.62), rng.u(0.42, 0.68))
        elif t < 0.85:
            self.terrain_col = _hsv(rng.u(40, 60), rng.u(0.3, 0.55), rng.u(0.5, 0.72))
        else:
            self.terrain_col = _hsv(rng.u(22, 36), rng.u(0.3, 0.5), rng.u(0.35, 0.55))
        if rng.chance(0.12):
            self.veg_hsv = (rng.u(30, 55), rng.u(0.55, 0.85), rng.u(0.35, 0.55))
        else:
            self.veg_hsv = (rng.u(75, 118), rng.u(0.45, 0.8), rng.u(0.22, 0.45))
        self.buildings = [_jit(rng, _bgr(*rng.pick(_BUILDING_COLORS)), 18) for _ in range(6)]
        # sky
        if self.sunny or rng.chance(0.4):
            top = _bgr(rng.u(40, 90), rng.u(100, 145), rng.u(175, 225))
            hor = _bgr(rng.u(165, 205), rng.u(185, 215), rng.u(210, 240))
        else:
            g = rng.u(150, 205)
            top = (g + rng.u(0, 12), g, g - rng.u(0, 8))
            hor = _scale(top, rng.u(1.05, 1.2))
        if rng.chance(0.12):
            hor = _mix(hor, _bgr(240, 170, 110), rng.u(0.3, 0.6))
        self.sky_top, self.sky_hor = top, hor
        self.clouds = []
        for _ in range(rng.ri(0, 6)):
            self.clouds.append((rng.u(-0.9, 0.9), rng.u(0.05, 0.35), rng.u(0.05, 0.2), rng.u(0.02, 0.06),
                                _mix(hor, (250, 250, 250), rng.u(0.3, 0.9))))
        self.skyline = self._make_skyline(rng)
        self.far_ground = _mix(self.terrain_col, hor, 0.35)
        # global photometric settings
        self.gain = np.array([rng.u(0.93, 1.07) for _ in range(3)], np.float32) * rng.u(0.78, 1.15)
        self.bias = rng.u(-18, 18)
        self.gamma = rng.u(0.82, 1.2)
        self._gamma_lut = np.clip(255.0 * (np.arange(256) / 255.0) ** self.gamma, 0, 255).astype(np.uint8)
        self.blur = rng.u(0.3, 1.0) if rng.chance(0.6) else 0.0
        self.noise = rng.u(1.0, 5.0)

    def light(self, nx, nz, ny=0.0):
        d = nx * self.sun[0] + nz * self.sun[1] + ny * self.sun[2]
        return self.amb + self.dif * max(0.0, d) * (1.3 if self.sunny else 0.6)

    def box_light(self, heading):
        key = round(heading, 2)
        value = self._lights.get(key)
        if value is None:   # a function of the key only, so the cache never changes a result
            sh, ch = math.sin(key), math.cos(key)
            value = self._lights[key] = (self.light(-sh, -ch), self.light(sh, ch), self.light(-ch, sh),
                                         self.light(ch, -sh), self.light(0, 0, 1.0) * 1.05)
        return value

    def _make_skyline(self, rng):
        segs = []
        az = -1.3
        kind_w = 0.3 + 0.6 * self.urban
        while az < 1.3:
            if rng.chance(kind_w):
                w = rng.u(0.02, 0.09)
                h = rng.u(0.004, 0.015 + 0.05 * self.urban)
                col = _mix(rng.pick(self.buildings), self.sky_hor, rng.u(0.35, 0.6))
                segs.append((az, az + w, h, BUILDING, col))
            else:
                w = rng.u(0.01, 0.04)
                h = rng.u(0.004, 0.016)
                col = _mix(_hsv(*self.veg_hsv), self.sky_hor, rng.u(0.2, 0.45))
                segs.append((az, az + w, h, VEG, col))
            az += w
        return segs

    # layout ------------------------------------------------------------------
    def _layout(self, rng):
        lw = rng.u(2.9, 3.6)
        two_way = rng.chance(0.75)
        n_fwd = rng.pick((1, 2, 2, 3)) if two_way else rng.pick((2, 2, 3))
        n_back = rng.pick((1, 1, 2)) if two_way else 0
        self.tram = rng.chance(0.35)
        lanes = []
        marks = []   # (kind, s, width, col): kind solid / dashed(dash, gap)
        white = _jit(rng, (225, 225, 222), 15)
        yellow = _jit(rng, _bgr(230, 190, 40), 15)
        centre_col = yellow if rng.chance(0.2) else white
        dash = rng.pick(((3.0, 6.0), (6.0, 12.0), (4.5, 7.5)))
        s = 0.0
        self.tram_grass = False
        if self.tram:
            tw = rng.u(3.0, 3.3)
            lanes.append({"s": tw / 2, "w": tw, "dir": 0, "kind": "tram"})
            if two_way or rng.chance(0.5):
                marks.append(("solid", 0.0, 0.15, centre_col))
            marks.append(("solid", tw, 0.15, centre_col))
            self.tram_grass = rng.chance(0.25)
            s = tw
        elif two_way:
            marks.append(("solid", 0.0, 0.15, centre_col))
            if rng.chance(0.3):
                marks.append(("solid", 0.3, 0.12, centre_col))
                s = 0.3
        for i in range(n_fwd):
            lanes.append({"s": s + lw * (i + 0.5), "w": lw, "dir": 1, "kind": "lane"})
            if i:
                marks.append(("dashed", s + lw * i, 0.13, white, dash))
        s += n_fwd * lw
        if rng.chance(0.3):
            marks.append(("solid", s + 0.05, 0.15, white))
            lanes.append({"s": s + 0.85, "w": 1.6, "dir": 1, "kind": "bike"})
            self.bike_tint = rng.pick((None, _bgr(150, 70, 60), _bgr(70, 130, 80)))
            self.bike_lane = (s + 0.05, s + 1.6)
            s += 1.6
        else:
            self.bike_lane = None
        if rng.chance(0.4):
            lanes.append({"s": s + 1.1, "w": 2.2, "dir": 1, "kind": "park"})
            if rng.chance(0.5):
                marks.append(("dashed", s, 0.12, white, (1.0, 5.0)))
            s += 2.2
        elif rng.chance(0.5):
            marks.append(("solid", s - 0.3, 0.12, white))
        s_right = s
        s = 0.0
        for i in range(n_back):
            lanes.append({"s": -lw * (i + 0.5), "w": lw, "dir": -1, "kind": "lane"})
            if i:
                marks.append(("dashed", -lw * i, 0.13, white, dash))
        s = -n_back * lw
        if rng.chance(0.3):
            lanes.append({"s": s - 1.1, "w": 2.2, "dir": -1 if two_way else 1, "kind": "park"})
            s -= 2.2
        elif rng.chance(0.5) and n_back:
            marks.append(("solid", s + 0.3, 0.12, white))
        s_left = s
        self.lanes, self.marks, self.lane_w = lanes, marks, lw
        self.s_road = (s_left, s_right)
        bands = []   # (s0, s1, col, cls), drawn in order
        self.s_walk = [None, None]
        self.s_strip = [None, None]
        s_lot = [0.0, 0.0]
        for idx, side, edge in ((0, -1, s_left), (1, 1, s_right)):
            pos = edge
            if rng.chance(0.35):
                width = rng.u(1.0, 3.0)
                self.s_strip[idx] = (pos, pos + side * width)
                bands.append((pos, pos + side * width, self.terrain_col, TERRAIN))
                pos += side * width
            width = rng.u(1.8, 5.0)
            self.s_walk[idx] = (pos, pos + side * width)
            bands.append((pos, pos + side * width, self.sidewalk_col, SIDEWALK))
            bands.append((pos, pos + side * 0.18, self.curb_col, SIDEWALK))
            pos += side * width
            s_lot[idx] = pos
        self.s_lot = tuple(s_lot)
        bands.append((s_left, s_right, self.road_col, ROAD))
        if self.bike_lane is not None and self.bike_tint is not None:
            bands.append((self.bike_lane[0] + 0.08, self.bike_lane[1], self.bike_tint, ROAD))
        if self.tram:
            tl = lanes[0]
            if self.tram_grass:
                bands.append((tl["s"] - tl["w"] / 2 + 0.2, tl["s"] + tl["w"] / 2 - 0.2, self.terrain_col, TERRAIN))
        self.bands = bands
        fwd = [ln for ln in lanes if ln["kind"] == "lane" and ln["dir"] == 1]
        self.ego_lane = fwd[-1] if rng.chance(0.6) else rng.pick(fwd)
        self.cam_s = self.ego_lane["s"] + rng.u(-0.3, 0.3)
        self.p_cross = rng.u(0.15, 0.45)
        self.p_zebra = rng.u(0.1, 0.35)
        self.pole_sp = rng.u(12.0, 30.0)
        self.avenue = rng.chance(0.5)
        self.tree_sp = rng.u(7.0, 16.0)
        self.ped_gap = rng.u(10.0, 45.0) * (1.6 - self.urban)
        self.park_fill = rng.u(0.3, 0.95)

    def _streams(self, rng):
        st = []
        for i, ln in enumerate(self.lanes):
            kind = ln["kind"]
            if kind == "lane":
                if ln is self.ego_lane:
                    v = self.v_ego + rng.u(0.5, 3.0)
                elif ln["dir"] > 0:
                    v = 0.0 if rng.chance(0.15) else max(0.0, self.v_ego * rng.u(0.5, 1.3) + rng.u(-1.0, 2.0))
                else:
                    v = -rng.u(5.0, 14.0)
                mix = {"car": 0.72, "truck": 0.08, "bus": 0.09, "motorcycle": 0.11}
                rightmost = ln["s"] == max(l2["s"] for l2 in self.lanes if l2["kind"] == "lane")
                if self.bike_lane is None and rightmost:
                    mix["bicycle"] = 0.06   # cyclists share the right lane when there is no bike lane
                st.append({"id": i, "kind": "vehicles", "s": ln["s"], "spread": 0.25, "v": v,
                           "heading": 0.0 if ln["dir"] > 0 else math.pi, "chunk": CHUNK,
                           "gap": (3.0, rng.u(5.0, 30.0)), "mix": mix, "ahead": ln is self.ego_lane})
            elif kind == "tram":
                v = 0.0 if rng.chance(0.25) else rng.u(4.0, 11.0) * rng.pick((-1, 1))
                st.append({"id": i, "kind": "vehicles", "s": ln["s"], "spread": 0.0, "v": v,
                           "heading": 0.0 if v >= 0 else math.pi, "chunk": 160.0,
                           "gap": (20.0, rng.u(20.0, 90.0)), "mix": {"tram": 1.0}, "ahead": False})
            elif kind == "bike":
                st.append({"id": i, "kind": "vehicles", "s": ln["s"], "spread": 0.2, "v": rng.u(3.5, 6.5),
                           "heading": 0.0, "chunk": CHUNK, "gap": (2.0, rng.u(6.0, 30.0)),
                           "mix": {"bicycle": 0.88, "motorcycle": 0.12}, "ahead": False})
        for idx in (0, 1):
            w0, w1 = self.s_walk[idx]
            for direction in (-1, 1):
                st.append({"id": 100 + 2 * idx + (direction > 0), "kind": "peds", "s": 0.5 * (w0 + w1),
                           "spread": max(0.0, abs(w1 - w0) / 2 - 0.4), "v": direction * rng.u(1.0, 1.5),
                           "chunk": CHUNK, "gap": (0.8, self.ped_gap)})
        self.streams = st

    # camera --------------------------------------------------------------------
    def camera(self, t):
        z = self.v_ego * t
        ph = self.wob_w * t + self.wob_p
        s = self.cam_s + self.wob_a * (math.sin(ph) - math.sin(self.wob_p))
        ds = self.wob_a * self.wob_w * math.cos(ph)
        yaw = self.road.theta(z) + math.atan2(ds, max(self.v_ego, 2.0)) * 0.7 + self.yaw0
        return (self.road.xc(z) + s, z, yaw, s)

    # caching of generated chunks ----------------------------------------------------
    def _cached(self, key, fn):
        value = self._cache.get(key)
        if value is None:
            value = fn()
            self._cache[key] = value
            self._cache_order.append(key)
            if len(self._cache_order) > 600:
                old = self._cache_order.pop(0)
                self._cache.pop(old, None)
        return value

    # vehicles -------------------------------------------------------------------------
    def _vehicle(self, rng, kind, heading, rider_p=0.9):
        return _Spec(rng, kind, rider=rng.chance(rider_p))

    def _stream_chunk(self, st, j):
        def gen():
            rng = _R(_seed(self.seed, "stream", st["id"], j))
            C = st["chunk"]
            lo, hi = j * C, (j + 1) * C
            ents = []
            g0, gmean = st["gap"]
            cur = lo + rng.u(0.0, gmean)
            if st["kind"] == "peds":
                while cur < hi:
                    s = st["s"] + rng.u(-st["spread"], st["spread"])
                    if rng.chance(0.07):
                        heading = 0.0 if st["v"] > 0 else math.pi
                        m = _Spec(rng, "bicycle", rider=True)
                        ents.append(_Mover(m, s, cur, vz=st["v"] * 3.0, heading=heading))
                    else:
                        ents.append(_Person(rng, s, cur, vz=st["v"] + rng.u(-0.2, 0.2)))
                    cur += g0 + rng.exp(gmean)
                return ents
            kinds = list(st["mix"].keys())
            weights = [st["mix"][k] for k in kinds]
            while True:
                kind = rng.wpick(kinds, weights)
                m = self._vehicle(rng, kind, st["heading"], rider_p=1.0)
                L = m.length
                if cur + L > hi:
                    break
                q = cur + L / 2
                spread = st["spread"] if kind in ("car", "truck", "bus", "tram") else 0.6
                s = st["s"] + rng.u(-spread, spread)
                if not (st["ahead"] and q - L / 2 < 9.0):
                    ents.append(_Mover(m, s, q, vz=st["v"], heading=st["heading"]))
                cur += L + g0 + rng.exp(st["gap"][1])
            return ents
        return self._cached(("stream", st["id"], j), gen)

    # static chunks -----------------------------------------------------------------------
    def _static(self, k):
        return self._cached(("static", k), lambda: self._make_static(k))

    def _arrival(self, z):
        return z / self.v_ego if self.v_ego > 0.5 else 1e6

    def _make_static(self, k):
        rng = _R(_seed(self.seed, "static", k))
        z0, z1 = k * CHUNK, (k + 1) * CHUNK
        out = {"lots": [], "ents": [], "cross": [], "zebra": [], "stop": []}
        cross = None
        zebras = []
        sL, sR = self.s_road
        if rng.chance(self.p_cross):
            width = rng.u(9.0, 15.0)
            c0 = z0 + rng.u(8.0, CHUNK - width - 4.0)
            sides = rng.pick(((-1, 1), (-1, 1), (1,), (-1,)))
            cross = (c0, c0 + width, sides)
            out["cross"].append(cross)
            if rng.chance(0.75):
                zebras.append(c0 - 4.2)
                out["stop"].append(c0 - 5.0)
            lights = rng.chance(0.75)
            for side in (-1, 1):
                edge = sR if side > 0 else sL
                kind = "light" if not lights else ("mast" if side > 0 and rng.chance(0.5) else "light")
                if not lights:
                    kind = "sign"
                out["ents"].append(_Pole(rng, edge + side * 0.5, c0 - 1.2, side, kind, sR - sL))
                if lights and rng.chance(0.5):
                    out["ents"].append(_Pole(rng, edge + side * 0.5, cross[1] + 1.5, side, "light", sR - sL))
        elif rng.chance(self.p_zebra):
            zz = z0 + rng.u(5.0, CHUNK - 8.0)
            zebras.append(zz)
            if rng.chance(0.5):
                out["stop"].append(zz - 0.8)
                for side in (-1, 1):
                    edge = sR if side > 0 else sL
                    out["ents"].append(_Pole(rng, edge + side * 0.5, zz - 1.0, side, "light", sR - sL))
            else:
                for side in (-1, 1):
                    edge = sR if side > 0 else sL
                    out["ents"].append(_Pole(rng, edge + side * 0.5, zz - 1.0, side, "sign", sR - sL))
        out["zebra"] = zebras
        blocked = []
        if cross:
            blocked.append((cross[0] - 2.0, cross[1] + 2.0))
        for zz in zebras:
            blocked.append((zz - 1.5, zz + 5.0))

        def free(z, margin=0.0):
            return all(not (b0 - margin <= z <= b1 + margin) for b0, b1 in blocked)

        # lots
        for idx, side in ((0, -1), (1, 1)):
            ranges = [(z0, z1)]
            if cross and side in cross[2]:
                ranges = [(z0, cross[0]), (cross[1], z1)]
                out["lots"].append(self._make_lot(rng, side, cross[0], cross[1], "cross"))
            for r0, r1 in ranges:
                z = r0
                while z < r1 - 0.01:
                    L = rng.u(8.0, 32.0)
                    if r1 - (z + L) < 6.0:
                        L = r1 - z
                    kind = rng.wpick(("building", "vegetation", "terrain", "wall", "fence"),
                                     (0.3 + 0.5 * self.urban, 0.32 - 0.15 * self.urban, 0.16 - 0.1 * self.urban,
                                      0.11, 0.11))
                    out["lots"].append(self._make_lot(rng, side, z, z + L, kind))
                    z += L
        # poles and trees along the road
        ents = out["ents"]
        for idx, side in ((0, -1), (1, 1)):
            edge = self.s_road[idx]
            strip = self.s_strip[idx]
            walk = self.s_walk[idx]
            z = z0 + rng.u(0.0, self.pole_sp)
            while z < z1:
                if free(z, 1.0):
                    kind = rng.wpick(("lamp", "sign", "light", "plain"), (0.4, 0.38, 0.08, 0.14))
                    s = (0.5 * (strip[0] + strip[1])) if strip and rng.chance(0.5) else edge + side * 0.45
                    ents.append(_Pole(rng, s, z, side, kind, self.s_road[1] - self.s_road[0]))
                z += self.pole_sp * rng.u(0.6, 1.4)
            if self.avenue:
                z = z0 + rng.u(0.0, self.tree_sp)
                while z < z1:
                    if free(z, 2.0) and rng.chance(0.9):
                        s = 0.5 * (strip[0] + strip[1]) if strip else edge + side * rng.u(0.9, 1.3)
                        ents.append(_Tree(rng, self, s, z, big=rng.u(0.8, 1.2), bush=strip is not None and
                                          rng.chance(0.2)))
                    z += self.tree_sp * rng.u(0.8, 1.2)
            # parked bicycles / motorcycles near the lot line
            if rng.chance(0.3):
                zb = z0 + rng.u(0.0, CHUNK - 5.0)
                if free(zb, 2.0):
                    kind = "motorcycle" if rng.chance(0.35) else "bicycle"
                    for i in range(rng.ri(1, 4)):
                        s = walk[1] - side * rng.u(0.6, 1.0)
                        hd = side * math.pi / 2 + rng.u(-0.25, 0.25)
                        m = _Spec(rng, kind, rider=False)
                        ents.append(_Mover(m, s, zb + i * rng.u(0.7, 1.2) * (1.6 if kind == "motorcycle" else 1),
                                           heading=hd))
            # standing people
            for _ in range(rng.ri(0, 2) if rng.chance(0.6) else 0):
                zp = z0 + rng.u(0.0, CHUNK)
                for i in range(rng.ri(1, 3)):
                    s = rng.u(min(walk), max(walk))
                    ents.append(_Person(rng, s, zp + rng.u(-0.8, 0.8)))
        # parked vehicles
        for ln in self.lanes:
            if ln["kind"] != "park":
                continue
            hd = 0.0 if ln["dir"] > 0 else math.pi
            z = z0 + rng.u(0.0, 4.0)
            while z < z1:
                kind = rng.wpick(("car", "truck", "motorcycle"), (0.9, 0.05, 0.05))
                m = self._vehicle(rng, kind, hd, rider_p=0.0)
                L = m.length
                if z + L > z1:
                    break
                zc = z + L / 2
                if free(zc, L / 2 + 0.5) and rng.chance(self.park_fill):
                    ents.append(_Mover(m, ln["s"] + rng.u(-0.15, 0.15), zc, heading=hd))
                z += L + rng.u(0.6, 3.0)
        # people and cyclists crossing at zebras
        for zz in zebras:
            for i in range(rng.ri(0, 3)):
                left = rng.chance(0.5)
                s0 = (sL - 0.6) if left else (sR + 0.6)
                s1 = (sR + 0.6) if left else (sL - 0.6)
                T = abs(s1 - s0) / 1.35
                t0 = self._arrival(zz) - rng.u(0.2, 1.2) * T - 1.0
                if self.v_ego <= 0.5:
                    t0 = rng.u(-T, 2.0)
                ents.append(_Person(rng, s0, zz + rng.u(0.4, 3.2), cross=(s0, s1, t0, rng.u(1.1, 1.6))))
            if rng.chance(0.3):
                left = rng.chance(0.5)
                s0 = (sL - 0.8) if left else (sR + 0.8)
                s1 = (sR + 0.8) if left else (sL - 0.8)
                v = rng.u(3.0, 5.0)
                T = abs(s1 - s0) / v
                t0 = self._arrival(zz) - rng.u(0.3, 1.5) * T - 1.0 if self.v_ego > 0.5 else rng.u(-T, 2.0)
                hd = math.pi / 2 if s1 > s0 else -math.pi / 2
                m = _Spec(rng, "bicycle", rider=True)
                ents.append(_Mover(m, s0, zz + rng.u(0.8, 2.5), heading=hd, cross=(s0, s1, t0, v)))
        return out

    def _building(self, rng, side, s_front, depth, za, zb, height, far=False):
        """A building box; its facade details are made on first draw (most are never drawn)."""
        col = rng.pick(self.buildings) if rng.chance(0.8) else _jit(rng, _bgr(*rng.pick(_BUILDING_COLORS)), 18)
        b = {"s0": s_front, "s1": s_front + side * depth, "za": za, "zb": zb, "h": height, "far": far,
             "side": side, "base": col, "sub": rng.getrandbits(31), "rects": None}
        b["glass"] = (not far) and height > 15 and rng.chance(0.15 * self.urban + 0.02)
        if b["glass"]:
            col = _jit(rng, (70, 70, 72), 15)
        b["col"] = _scale(col, self.light(-side, 0.0))
        b["side_col"] = _scale(col, self.light(0.0, -1.0))
        b["roof"] = None
        if not far and height < 11 and rng.chance(0.35):
            b["roof"] = (rng.u(2.0, 4.0), _scale(_jit(rng, _bgr(*rng.pick(_ROOF_COLORS)), 12),
                                                 self.light(-side, 0, 0.7)))
        return b

    def _building_details(self, b):
        rng = _R(b["sub"])
        far, height, col = b["far"], b["h"], b["base"]
        length = b["zb"] - b["za"]
        glass_tower = b["glass"]
        floor_h = rng.u(2.9, 3.6)
        shop = (not far) and rng.chance(0.45 * self.urban + 0.1) and height > 5
        if glass_tower:
            col_sp = rng.u(1.4, 2.0)
            win_w, win_h = col_sp * 0.88, floor_h * 0.85
        else:
            col_sp = rng.u(2.2, 4.2)
            win_w = col_sp * rng.u(0.32, 0.62)
            win_h = floor_h * rng.u(0.38, 0.6)
        n_cols = int((length - 0.8) / col_sp)
        rects = np.zeros((0, 4))
        if n_cols > 0 and height > 3:
            margin = (length - n_cols * col_sp) / 2.0
            y0 = (1 if shop else 0) * floor_h + floor_h * 0.3
            ys = np.arange(y0, height - 0.5 - win_h, floor_h)
            if len(ys):
                us = margin + np.arange(n_cols) * col_sp + (col_sp - win_w) / 2
                U, Y = np.meshgrid(us, ys)
                U, Y = U.ravel(), Y.ravel()
                rects = np.stack([U, U + win_w, Y, Y + win_h], 1)
        glass = _glass(rng)
        if glass_tower:
            glass = _jit(rng, rng.pick([(120, 100, 70), (110, 110, 100), (150, 140, 120), (90, 80, 60)]), 15)
        k = rng.ri(2, 5)
        sel = ((np.arange(len(rects)) * 7 + (rects[:, 0] * 3).astype(int)) % k) == 0
        groups = []
        if shop:
            sh_col = _jit(rng, rng.pick([(40, 40, 40), (70, 60, 50), _scale(col, 0.6)]), 10)
            groups.append((np.array([[0.0, length, 0.0, 3.6]]), sh_col))
            shop_rects = []
            u = rng.u(0.5, 1.5)
            while u < length - 2.0:
                w = min(rng.u(2.0, 4.5), length - 0.5 - u)
                shop_rects.append((u, u + w, 0.3, 2.9))
                u += w + rng.u(0.6, 2.0)
            if shop_rects:
                groups.append((np.array(shop_rects), _jit(rng, _glass(rng), 10)))
            if rng.chance(0.5):
                groups.append((np.array([[0.0, length, 3.0, 3.5]]), _jit(rng, _paint(rng), 10)))
        groups.append((np.array([[0.0, length, height - 0.45, height]]), _scale(b["col"], rng.u(0.6, 0.85))))
        groups.append((rects[~sel], glass))
        groups.append((rects[sel], _scale(glass, rng.u(1.3, 2.2))))
        arrays = [np.asarray(r, np.float64).reshape(-1, 4) for r, _ in groups]
        b["rect_ids"] = np.concatenate([np.full(len(r), i) for i, r in enumerate(arrays)])
        b["rect_cols"] = [c for _, c in groups]
        b["rects"] = np.concatenate(arrays, 0)

    def _make_lot(self, rng, side, za, zb, kind):
        idx = 0 if side < 0 else 1
        lot_s = self.s_lot[idx]
        lot = {"side": side, "za": za, "zb": zb, "kind": kind, "building": None, "far": None, "trees": [],
               "front": None}
        paved = rng.chance(0.35 + 0.4 * self.urban)
        lot["ground"] = (SIDEWALK, _jit(rng, self.sidewalk_col, 8)) if paved else \
            (TERRAIN, _jit(rng, self.terrain_col, 14))
        if kind == "cross":
            lot["ground"] = (SIDEWALK, self.sidewalk_col)
            if rng.chance(0.75):
                lot["far"] = self._building(rng, side, lot_s + side * rng.u(30.0, 90.0), 20.0, za - 6.0, zb + 6.0,
                                            rng.u(6.0, 30.0), far=True)
            return lot
        gap_a = rng.u(0.0, 2.5) if rng.chance(0.3) else 0.0
        gap_b = rng.u(0.0, 2.5) if rng.chance(0.3) else 0.0
        height = rng.u(5.0, 9.0) + self.urban * rng.u(0.0, 22.0)
        if kind == "building":
            setback = rng.u(0.0, 1.0) if rng.chance(0.3 + 0.6 * self.urban) else rng.u(2.0, 9.0)
            lot["building"] = self._building(rng, side, lot_s + side * setback, rng.u(10.0, 25.0), za + gap_a,
                                             zb - gap_b, height)
            if setback > 2.0:
                lot["ground"] = (TERRAIN, _jit(rng, self.terrain_col, 14)) if rng.chance(0.6) else \
                    (SIDEWALK, _jit(rng, self.sidewalk_col, 8))
                if rng.chance(0.55):
                    lot["front"] = self._front(rng, side, lot_s, rng.wpick(("hedge", "fence", "wall"),
                                                                            (0.4, 0.35, 0.25)))
                for _ in range(rng.ri(0, 2)):
                    lot["trees"].append(_Tree(rng, self, lot_s + side * rng.u(1.0, setback - 0.5),
                                              rng.u(za + 1.0, zb - 1.0), big=rng.u(0.6, 1.1),
                                              bush=rng.chance(0.5)))
        elif kind == "vegetation":
            lot["ground"] = (TERRAIN, _jit(rng, self.terrain_col, 14))
            if rng.chance(0.3):
                lot["building"] = self._building(rng, side, lot_s + side * rng.u(14.0, 30.0), 15.0, za, zb, height)
            n = rng.ri(2, 6)
            for _ in range(n):
                lot["trees"].append(_Tree(rng, self, lot_s + side * rng.u(1.5, 14.0), rng.u(za, zb),
                                          big=rng.u(1.0, 1.8)))
            for _ in range(rng.ri(0, 3)):
                lot["trees"].append(_Tree(rng, self, lot_s + side * rng.u(0.8, 4.0), rng.u(za, zb),
                                          big=rng.u(0.8, 1.6), bush=True))
            if rng.chance(0.3):
                lot["front"] = self._front(rng, side, lot_s, "hedge")
        elif kind == "terrain":
            lot["ground"] = (TERRAIN, _jit(rng, self.terrain_col, 14))
            if rng.chance(0.4):
                lot["building"] = self._building(rng, side, lot_s + side * rng.u(20.0, 50.0), 15.0, za, zb, height)
            for _ in range(rng.ri(0, 2)):
                lot["trees"].append(_Tree(rng, self, lot_s + side * rng.u(4.0, 25.0), rng.u(za, zb),
                                          big=rng.u(0.9, 1.6)))
            if rng.chance(0.45):
                lot["front"] = self._front(rng, side, lot_s, rng.pick(("fence", "fence", "wall")))
        else:   # wall / fence lots
            lot["front"] = self._front(rng, side, lot_s, kind)
            r = rng.random()
            if r < 0.5:
                lot["building"] = self._building(rng, side, lot_s + side * rng.u(2.0, 10.0), rng.u(10.0, 20.0),
                                                 za + gap_a, zb - gap_b, height)
            elif r < 0.85:
                for _ in range(rng.ri(1, 4)):
                    lot["trees"].append(_Tree(rng, self, lot_s + side * rng.u(1.5, 8.0), rng.u(za, zb),
                                              big=rng.u(0.9, 1.6)))
        return lot

    def _front(self, rng, side, lot_s, kind):
        s = lot_s + side * 0.12
        if kind == "hedge":
            return {"kind": "hedge", "s": s, "h": rng.u(0.8, 2.2), "col": _veg_color(rng, self)}
        if kind == "wall":
            col = _jit(rng, _bgr(*rng.pick(_WALL_COLORS)), 14)
            return {"kind": "wall", "s": s, "h": rng.u(0.9, 3.2), "col": _scale(col, self.light(-side, 0)),
                    "cap": _scale(col, 1.15), "joints": rng.chance(0.5), "joint_col": _scale(col, 0.75)}
        style = rng.pick(("mesh", "bars", "wood", "rail"))
        post = _jit(rng, rng.pick([(60, 60, 60), (120, 120, 120), (40, 70, 40), (60, 80, 110)]), 10)
        if style == "wood":
            col = _jit(rng, _bgr(140, 105, 70), 20)
            alpha = 1.0
        elif style == "mesh":
            col = _jit(rng, rng.pick([(150, 150, 150), (90, 110, 90), (100, 100, 100)]), 12)
            alpha = rng.u(0.35, 0.55)
        else:
            col = post
            alpha = rng.u(0.45, 0.75)
        return {"kind": "fence", "s": s, "h": rng.u(1.0, 2.2), "col": col, "alpha": alpha, "post": post,
                "post_sp": rng.u(1.5, 3.0), "style": style}

    # drawing ------------------------------------------------------------------------------
    def _draw_sky(self, cv):
        H, W = self.size
        if self._sky is None:
            rows = np.arange(H, dtype=np.float32)
            t = np.clip((rows - (self.v0 - H * 0.6)) / (H * 0.6), 0.0, 1.0)[:, None]
            grad = (np.array(self.sky_top, np.float32)[None, :] * (1 - t) +
                    np.array(self.sky_hor, np.float32)[None, :] * t)
            sky = np.empty((H, W, 3), np.uint8)
            sky[:] = grad.astype(np.uint8)[:, None, :]
            vi = max(0, int(math.ceil(self.v0)))
            sky[vi:] = self.far_ground
            lab = np.full((H, W), SKY, np.uint8)
            lab[vi:] = TERRAIN
            self._sky = (sky, lab)
        np.copyto(cv.img, self._sky[0])
        np.copyto(cv.lab, self._sky[1])
        for az, el, rx, ry, col in self.clouds:   # image only: kept above the horizon (sky label)
            u = cv.cx + cv.f * math.tan(az - cv.yaw)
            v = cv.v0 - cv.f * el
            room = (cv.v0 - 2.0 - v) * 0.95
            if room < 2.0:
                continue
            cv.px_ellipse(u, v, cv.f * rx, min(cv.f * ry, room), col, None)
            v2 = v + min(cv.f * ry * 0.3, room * 0.3)
            cv.px_ellipse(u + cv.f * rx * 0.6, v2, cv.f * rx * 0.7, min(cv.f * ry * 0.8, cv.v0 - 2.0 - v2), col,
                          None)
        segs = self.skyline
        for az0, az1, h, cls, col in segs:
            a0, a1 = az0 - cv.yaw, az1 - cv.yaw
            if a1 < -1.45 or a0 > 1.45:
                continue
            u0 = cv.cx + cv.f * math.tan(max(-1.45, a0))
            u1 = cv.cx + cv.f * math.tan(min(1.45, a1))
            if u1 < 0 or u0 > W:
                continue
            top = cv.v0 - cv.f * h
            cv.fill_uv([np.array([[u0, cv.v0 + 1.5], [u1, cv.v0 + 1.5], [u1, top], [u0, top]])], col, cls)

    def _draw_ground(self, cv, lots, statics, ents, t):
        zs = cv.Z + _GROUND_Z
        zlo, zhi = cv.Z - 8.0, cv.Z + ROAD_FAR
        runs = []   # consecutive lots with the same ground class are one band
        for lot in sorted(lots, key=lambda l: (l["side"], l["za"])):
            if runs and runs[-1][0] == lot["side"] and runs[-1][1] == lot["ground"][0] and \
                    abs(runs[-1][4] - lot["za"]) < 1e-6:
                runs[-1][4] = lot["zb"]
            else:
                runs.append([lot["side"], lot["ground"][0], lot["ground"][1], lot["za"], lot["zb"]])
        for side, cls, col, za, zb in runs:
            s0 = self.s_lot[0 if side < 0 else 1]
            cv.band(s0, s0 + side * 250.0, max(za, zlo), zb, col, cls, zs)
        for s0, s1, col, cls in self.bands:
            cv.band(s0, s1, zlo, zhi, col, cls, zs)
        sL, sR = self.s_road
        # cross streets
        for ch in statics:
            for c0, c1, sides in ch["cross"]:
                for side in sides:
                    edge = sR if side > 0 else sL
                    walk = abs(self.s_walk[1 if side > 0 else 0][1] - self.s_walk[1 if side > 0 else 0][0])
                    cv.band(edge, edge + side * 250.0, c0 + walk, c1 - walk, self.road_col, ROAD, zs)
        # lane marks
        for mk in self.marks:
            kind, s, w, col = mk[:4]
            if kind == "solid":
                cv.band(s - w / 2, s + w / 2, zlo, cv.Z + 260.0, col, ROAD, zs)
            else:
                dash, gap = mk[4]
                period = dash + gap
                k0 = int(math.floor((cv.Z - 2.0) / period))
                k1 = int(math.ceil((cv.Z + 140.0) / period))
                zz = np.arange(k0, k1 + 1) * period
                quads = cv.road_quads(np.full(len(zz), s - w / 2), np.full(len(zz), s + w / 2), zz, zz + dash)
                if quads:
                    cv.fill_uv(quads, col, ROAD)
        # tram rails
        if self.tram:
            ln = self.lanes[0]
            rail = (150, 150, 155) if self.tram_grass else _scale(self.road_col, 0.55)
            for off in (-0.72, 0.72):
                cv.band(ln["s"] + off - 0.05, ln["s"] + off + 0.05, zlo, cv.Z + 200.0, rail, None, zs)
        # zebras and stop lines
        white = (228, 228, 225)
        for ch in statics:
            for zz in ch["zebra"]:
                ss = np.arange(sL + 0.4, sR - 0.4, 1.0)
                quads = cv.road_quads(ss, ss + 0.5, np.full(len(ss), zz), np.full(len(ss), zz + 3.5))
                if quads:
                    cv.fill_uv(quads, white, ROAD)
            for zz in ch["stop"]:
                s0 = self.lanes[0]["s"] + self.lanes[0]["w"] / 2 if self.tram else 0.0
                quads = cv.road_quads([s0], [sR - 0.3], [zz - 0.45], [zz])
                if quads:
                    cv.fill_uv(quads, white, ROAD)
        # shadows (shade map, applied to ground pixels only)
        if self.sunny:
            strength = int(255 * (self.amb + 0.05))
            L = self.sun[2]
            reach = 1.0 / max(0.25, math.tan(math.asin(min(0.99, L))))
            for lot in lots:
                b = lot["building"]
                if b is None or lot["side"] * self.sun[0] < 0.05:
                    continue   # the sun is on the road side: no shadow onto the road
                d = b["h"] * reach
                ds = -self.sun[0] / max(1e-3, math.hypot(self.sun[0], self.sun[1])) * d
                dz = -self.sun[1] / max(1e-3, math.hypot(self.sun[0], self.sun[1])) * d
                S = [b["s0"], b["s0"], b["s0"] + ds, b["s0"] + ds]
                Z = [b["za"], b["zb"], b["zb"] + dz, b["za"] + dz]
                uv = cv.road_poly(S, Z)
                if uv is not None:
                    cv.shade_uv([uv], strength)
        rects = []
        for ent in ents:
            sh = ent.shadow(cv, self, t)
            if sh:
                rects.extend(sh)
        if rects:
            r = np.array(rects)
            quads = cv.road_quads(r[:, 0], r[:, 1], r[:, 2], r[:, 3])
            if quads:
                cv.shade_uv(quads, int(255 * (self.amb * 0.75)))

    def _draw_building(self, cv, b):
        s0, s1, za, zb, h = b["s0"], b["s1"], b["za"], b["zb"], b["h"]
        if zb <= cv.Z - 0.5:
            return
        roof = b["roof"]
        side = 1.0 if s1 > s0 else -1.0
        rh = roof[0] if roof is not None else 0.0
        sm = 0.5 * (s0 + s1)
        S = np.array([s0, s0, s0, s0, s1, s1, s1, s1, sm, sm])
        Z = np.array([za, zb, zb, za, za, za, zb, zb, za, zb])
        Y = np.array([0.0, 0.0, h, h, 0.0, h, 0.0, h, h + rh, h + rh])
        x, y, z = cv.cam(cv.road.xc(Z) + S, Y, Z)
        if z.min() >= NEAR:   # fast path: project the corners once
            uv = np.stack([cv.cx + cv.f * x / z, cv.v0 - cv.f * y / z], 1)
            if cv.Z < za:
                cv.fill_uv([uv[[0, 4, 5, 3]]], b["side_col"], BUILDING)
                if roof is not None:
                    cv.fill_uv([uv[[3, 5, 8]]], b["side_col"], BUILDING)
            cv.fill_uv([uv[[0, 1, 2, 3]]], b["col"], BUILDING)
            if roof is not None and -rh * side * (cv.s - s0) + abs(s1 - s0) / 2.0 * (cv.ch - h) > 0:
                cv.fill_uv([uv[[3, 2, 9, 8]]], roof[1], BUILDING)
            if uv[:4, 0].max() < 0 or uv[:4, 0].min() > cv.W:
                return
        else:
            self._draw_building_clipped(cv, b)
        # details only when large enough on screen
        zmid = max(cv.zc_of(s0, min(max(cv.Z + 5.0, za), zb)), 1.0)
        if cv.f * 3.0 / zmid < 3.0:
            return
        if b["rects"] is None:
            self._building_details(b)
        cv.face_rect_groups(s0, za, s0, zb, b["rects"], b["rect_ids"], b["rect_cols"], BUILDING)

    def _draw_building_clipped(self, cv, b):
        s0, s1, za, zb, h = b["s0"], b["s1"], b["za"], b["zb"], b["h"]
        roof = b["roof"]
        side = 1.0 if s1 > s0 else -1.0
        if cv.Z < za:
            cv.quad3(s0, za, s1, za, 0.0, h, b["side_col"], BUILDING)
            if roof is not None:
                sm = 0.5 * (s0 + s1)
                uv = cv.road_poly([s0, s1, sm], [za, za, za], [h, h, h + roof[0]])
                if uv is not None:
                    cv.fill_uv([uv], b["side_col"], BUILDING)
        elif cv.Z > zb:
            cv.quad3(s0, zb, s1, zb, 0.0, h, b["side_col"], BUILDING)
        uv = cv.quad3(s0, za, s0, zb, 0.0, h, b["col"], BUILDING)
        if uv is None:
            return
        if roof is not None:
            rh, rcol = roof
            sm = 0.5 * (s0 + s1)
            d2 = abs(s1 - s0) / 2.0
            if -rh * side * (cv.s - s0) + d2 * (cv.ch - h) > 0:
                ruv = cv.road_poly([s0, s0, sm, sm], [za, zb, zb, za], [h, h, h + rh, h + rh])
                if ruv is not None:
                    cv.fill_uv([ruv], rcol, BUILDING)

    def _draw_front(self, cv, fr, za, zb, side):
        s, h = fr["s"], fr["h"]
        kind = fr["kind"]
        if kind == "hedge":
            cv.quad3(s, za, s, zb, 0.0, h, fr["col"], VEG)
            if cv.ch > h:
                uv = cv.road_poly([s, s, s + side * 0.8, s + side * 0.8], [za, zb, zb, za], [h, h, h, h])
                if uv is not None:
                    cv.fill_uv([uv], _scale(fr["col"], 1.2), VEG)
            return
        if kind == "wall":
            cv.quad3(s, za, s, zb, 0.0, h, fr["col"], WALL)
            if cv.ch > h:
                uv = cv.road_poly([s, s, s + side * 0.3, s + side * 0.3], [za, zb, zb, za], [h, h, h, h])
                if uv is not None:
                    cv.fill_uv([uv], fr["cap"], WALL)
            if fr["joints"]:
                ys = np.arange(0.3, h - 0.1, 0.35)
                rects = np.stack([np.zeros(len(ys)), np.full(len(ys), zb - za), ys, ys + 0.04], 1)
                cv.face_rects(s, za, s, zb, rects, fr["joint_col"], None)
            return
        # fence
        uv = cv.road_poly([s, s, s, s], [za, zb, zb, za], [0.0, 0.0, h, h])
        if uv is None or not cv._onscreen(uv):
            return
        if fr["alpha"] >= 1.0:
            cv.fill_uv([uv], fr["col"], FENCE)
        else:
            x0 = int(max(0, math.floor(uv[:, 0].min())))
            x1 = int(min(cv.W, math.ceil(uv[:, 0].max()) + 1))
            y0 = int(max(0, math.floor(uv[:, 1].min())))
            y1 = int(min(cv.H, math.ceil(uv[:, 1].max()) + 1))
            if x1 <= x0 or y1 <= y0:
                return
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(mask, [_ipts(uv - np.array([x0, y0]))], 1, _LINE, _SHIFT)
            m = mask.astype(bool)
            roi = cv.img[y0:y1, x0:x1]
            a = fr["alpha"]
            roi[m] = (roi[m].astype(np.float32) * (1.0 - a) + np.array(fr["col"], np.float32) * a).astype(np.uint8)
            cv.lab[y0:y1, x0:x1][m] = FENCE
        length = zb - za
        n = max(1, int(length / fr["post_sp"]))
        us = np.linspace(0.0, length, n + 1)
        rects = np.stack([us - 0.05, us + 0.05, np.zeros(n + 1), np.full(n + 1, h)], 1)
        rails = np.array([[0.0, length, h - 0.08, h], [0.0, length, 0.1, 0.16]])
        if fr["style"] == "wood":
            pl = np.arange(0.0, length, 0.18)
            rects = np.concatenate([rects, np.stack([pl, pl + 0.025, np.zeros(len(pl)), np.full(len(pl), h)], 1)])
        cv.face_rects(s, za, s, zb, np.concatenate([rects, rails]), fr["post"], FENCE)

    def _draw_lot(self, cv, lot):
        za, zb, side = lot["za"], lot["zb"], lot["side"]
        if lot["far"] is not None:
            self._draw_building(cv, lot["far"])
        if lot["building"] is not None:
            self._draw_building(cv, lot["building"])
        trees = [tr for tr in lot["trees"] if tr.key(cv, 0.0) is not None]
        trees.sort(key=lambda tr: -math.hypot(tr.s - cv.s, tr.z - cv.Z))
        for tr in trees:
            tr.draw(cv, self, 0.0)
        if lot["front"] is not None and zb > cv.Z - 0.5:
            self._draw_front(cv, lot["front"], za, zb, side)

    def _draw_hood(self, cv):
        H, W = self.size
        depth, bulge, col = self.hood
        us = np.linspace(-0.05 * W, 1.05 * W, 24)
        x = (us - W / 2.0) / (W / 2.0)
        vs = H - depth + bulge * (x ** 2) - bulge
        vs = np.minimum(vs + bulge, H + 2)
        poly = np.concatenate([np.stack([us, vs], 1), [[1.05 * W, H + 5], [-0.05 * W, H + 5]]])
        cv.fill_uv([poly], _scale(col, 0.45), _HOOD_TMP)
        hl = np.concatenate([np.stack([us, vs], 1), np.stack([us[::-1], vs[::-1] + max(1.0, depth * 0.12)], 1)])
        cv.fill_uv([hl], _scale(col, 0.8), None)

    # one frame ---------------------------------------------------------------------------------
    def render(self, t, frame=0, details=False):
        """(image, label, outlier_mask) of the drive at time t (seconds); with ``details`` a
        fourth item, the ground truth of the outlier objects (see :meth:`_outlier_details`)."""
        cam = self.camera(t)
        cv = _Canvas(self, cam)
        z_cam = cam[1]
        k0 = int(math.floor((z_cam - 40.0) / CHUNK))
        k1 = int(math.floor((z_cam + LOT_FAR) / CHUNK))
        statics = [self._static(k) for k in range(k0, k1 + 1)]
        lots = []
        ents = []
        for ch in statics:
            for lot in ch["lots"]:
                if lot["zb"] > z_cam - 1.0 and lot["za"] < z_cam + LOT_FAR:
                    lots.append(lot)
            ents.extend(ch["ents"])
        for st in self.streams:
            C = st["chunk"]
            off = st["v"] * t
            lo = z_cam - 60.0 - off
            hi = z_cam + VIEW_FAR + 30.0 - off
            for j in range(int(math.floor(lo / C)), int(math.floor(hi / C)) + 1):
                ents.extend(self._stream_chunk(st, j))
        ents.extend(self.extra)
        keyed = []
        for i, ent in enumerate(ents):
            key = ent.key(cv, t)
            if key is not None:
                keyed.append((-key, i, ent))
        keyed.sort(key=lambda x: (x[0], x[1]))
        visible = [e for _, _, e in keyed]
        self._draw_sky(cv)
        self._draw_ground(cv, lots, statics, visible, t)
        lots.sort(key=lambda lot: (-lot["zb"], -lot["za"], lot["side"]))
        for lot in lots:
            self._draw_lot(cv, lot)
        for ent in visible:
            ent.draw(cv, self, t)
        if self.hood is not None:
            self._draw_hood(cv)
        image, label, mask = self._finish(cv, frame)
        if details:
            return image, label, mask, self._outlier_details(cv, image, mask)
        return image, label, mask

    def _outlier_details(self, cv, image, mask):
        """{'instances': uint8 HxW (object id where the mask says outlier, else 0), 'objects':
        [{id, shape, texture, on_road, distance_m, pixels, fraction, bbox, contrast}],
        'image': {sunny, mean_luma, gamma, blur, noise}}: what rt-eval breaks AP down by.

        ``contrast`` is the mean colour distance (0-255 scale, Euclidean in BGR / sqrt 3)
        between the object's visible pixels and a 5-pixel ring of inlier pixels around it.
        """
        H, W = self.size
        if cv.inst is None:
            instances = np.zeros((H, W), np.uint8)
        else:
            instances = np.where(mask == OUTLIER, cv.inst, 0).astype(np.uint8)
        objects = []
        img = image.astype(np.float32)
        for ent in self.extra:
            inside = instances == ent.ident
            pixels = int(np.count_nonzero(inside))
            if pixels == 0:
                continue
            info = dict(ent.info)
            ys, xs = np.nonzero(inside)
            ring = cv2.dilate(inside.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool)
            ring &= mask == INLIER
            contrast = None
            if ring.any():
                diff = img[inside].mean(0) - img[ring].mean(0)
                contrast = round(float(np.sqrt((diff ** 2).sum() / 3.0)), 2)
            info.update({"pixels": pixels, "fraction": pixels / float(H * W),
                         "bbox": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
                         "contrast": contrast})
            objects.append(info)
        luma = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        scene = {"sunny": bool(self.sunny), "mean_luma": round(float(luma.mean()), 2),
                 "gamma": round(float(self.gamma), 3), "blur": round(float(self.blur), 3),
                 "noise": round(float(self.noise), 3)}
        return {"instances": instances, "objects": objects, "image": scene}

    def _finish(self, cv, frame):
        """Textures, ground shadows, lighting, blur and sensor noise (image only); final labels."""
        lab = cv.lab
        factor = cv2.LUT(lab, _TEX_A)
        factor *= self.tex_a
        factor += 1.0
        factor += cv2.LUT(lab, _TEX_B) * self.tex_b
        if (cv.shade != 255).any():
            # 1 - (1 - shade) on ground pixels only
            dark = cv2.LUT(lab, _GROUND_F) * (255 - cv.shade.astype(np.float32))
            factor *= 1.0 - dark
        g = self.gain
        img = cv2.multiply(cv.img.astype(np.float32), cv2.merge((factor * g[0], factor * g[1], factor * g[2])))
        img += self.bias
        if self.blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), self.blur)
        H, W = self.size
        bank = _sensor_bank(H, W)
        rng = _R(_seed(self.seed, "frame-noise", frame))
        oy, ox = rng.ri(0, bank.shape[0] - H), rng.ri(0, bank.shape[1] - W)
        img += bank[oy:oy + H, ox:ox + W] * self.noise
        np.clip(img, 0, 255, out=img)
        img = img.astype(np.uint8)
        if abs(self.gamma - 1.0) > 0.02:
            img = cv2.LUT(img, self._gamma_lut)
        label = lab.copy()
        outlier = label == _OUT_TMP
        void = label >= _HOOD_TMP
        label[void] = K.IGNORE_ID
        mask = np.zeros(label.shape, np.uint8)
        mask[void] = VOID
        mask[outlier] = OUTLIER
        return img, label, mask


_SENSOR_BANKS = {}
_SMOOTH_BANKS = {}


def _smooth_bank(h, w):
    """A fixed field of blotchy (low + mid frequency) noise per frame size; worlds use random windows."""
    key = (h, w)
    bank = _SMOOTH_BANKS.get(key)
    if bank is None:
        if len(_SMOOTH_BANKS) > 4:
            _SMOOTH_BANKS.clear()
        H, W = h + 61, w + 93
        rs = np.random.RandomState(2345678)
        low = rs.standard_normal((max(2, H // 24), max(2, W // 24))).astype(np.float32)
        mid = rs.standard_normal((max(2, H // 5), max(2, W // 5))).astype(np.float32)
        bank = _SMOOTH_BANKS[key] = (cv2.resize(low, (W, H), interpolation=cv2.INTER_CUBIC) * 0.7 +
                                     cv2.resize(mid, (W, H), interpolation=cv2.INTER_LINEAR) * 0.6)
    return bank


def _sensor_bank(h, w):
    """A fixed (h + 61) x (w + 93) x 3 field of N(0, 1) noise per frame size (random windows per frame)."""
    key = (h, w)
    bank = _SENSOR_BANKS.get(key)
    if bank is None:
        if len(_SENSOR_BANKS) > 4:
            _SENSOR_BANKS.clear()
        bank = _SENSOR_BANKS[key] = np.random.RandomState(7654321).standard_normal(
            (h + 61, w + 93, 3)).astype(np.float32)
    return bank


# --------------------------------------------------------------------------- public API

def _size(size):
    return parse_size(size) if size is not None else DEFAULT_SIZE


def render_scene(seed, index, size=DEFAULT_SIZE, outliers=False, split="train"):
    """One road scene: (image_bgr uint8 HxWx3, label uint8 HxW train ids / 255, outlier_mask or None).

    Deterministic in (seed, split, index). With ``outliers`` one to three objects of
    none of the 19 classes stand on the road / sidewalk; their label is 255 and the
    returned mask is 1 there (0 inlier, 255 void elsewhere where the label is 255).
    """
    image, label, mask, _ = render_scene_details(seed, index, size, outliers, split)
    return image, label, (mask if outliers else None)


def render_scene_details(seed, index, size=DEFAULT_SIZE, outliers=False, split="train"):
    """render_scene plus the outlier ground truth: (image, label, mask, details), the mask
    never None, ``details`` as in _World._outlier_details (instance map, objects, lighting)."""
    world = _World(_seed(int(seed), str(split), "image", int(index)), _size(size), outliers=bool(outliers),
                   kind="image")
    return world.render(0.0, 0, details=True)


def render_sequence(seed, index, length=DEFAULT_LENGTH, size=DEFAULT_SIZE, fps=DEFAULT_FPS, split="train",
                    outliers=False):
    """Iterator over ``length`` frames (image, label, outlier_mask or None) of one drive at ``fps``.

    The camera drives forward (speed varies per sequence, slight steering), other
    road users move with their own smooth velocities (some cross the road).
    """
    world = _World(_seed(int(seed), str(split), "sequence", int(index)), _size(size), outliers=bool(outliers),
                   kind="sequence")
    fps = float(fps)
    for i in range(int(length)):
        image, label, mask = world.render(i / fps, i)
        yield image, label, (mask if outliers else None)


def render_sequence_details(seed, index, length=DEFAULT_LENGTH, size=DEFAULT_SIZE, fps=DEFAULT_FPS,
                            split="train", outliers=False):
    """render_sequence with (image, label, mask, details) per frame (see render_scene_details)."""
    world = _World(_seed(int(seed), str(split), "sequence", int(index)), _size(size), outliers=bool(outliers),
                   kind="sequence")
    fps = float(fps)
    for i in range(int(length)):
        yield world.render(i / fps, i, details=True)


def video_frames(seed, frames, size=DEFAULT_SIZE, fps=30.0):
    """Images (BGR) of one continuous drive, for demo videos."""
    world = _World(_seed(int(seed), "video", "drive", 0), _size(size), outliers=False, kind="video")
    for i in range(int(frames)):
        yield world.render(i / float(fps), i)[0]


def cities(split, sequences=False):
    table = SEQUENCE_CITIES if sequences else CITIES
    if split in table:
        return table[split]
    suffix = ("lane", "cross") if sequences else ("burg", "field")
    return tuple(str(split) + s for s in suffix)


def sample_name(split, index, sequences=False):
    """(city, seq) of image / sequence ``index`` of a split."""
    names = cities(split, sequences)
    return names[index % len(names)], index


def has_outliers(seed, split, index, fraction, sequences=False):
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    return _R(_seed(int(seed), str(split), "has-outliers", "seq" if sequences else "img", int(index))).random() \
        < fraction


def _check_root(root):
    import os
    try:
        if not os.path.isdir(root):
            os.makedirs(root)
        probe = os.path.join(root, ".rt-synth-write-test")
        with open(probe, "w") as handle:
            handle.write("ok")
        os.remove(probe)
    except (OSError, IOError) as exc:
        raise UserError("cannot write to {}: {}".format(root, getattr(exc, "strerror", None) or exc))


def _write_image_job(args):
    root, split, seed, index, size, outliers, color = args
    flag = has_outliers(seed, split, index, outliers)
    city, seq = sample_name(split, index)
    if outliers > 0:   # the mask and its sidecars (instances + objects JSON) for every image
        image, label, mask, details = render_scene_details(seed, index, size, outliers=flag, split=split)
        if not flag:
            mask = np.where(label == K.IGNORE_ID, VOID, INLIER).astype(np.uint8)
        cs.write_sample(root, split, city, seq, 0, image, label, mask, color)
        cs.write_outlier_details(root, split, city, seq, 0, details)
        return 1
    image, label, _ = render_scene(seed, index, size, outliers=False, split=split)
    cs.write_sample(root, split, city, seq, 0, image, label, None, color)
    return 1


def _write_sequence_job(args):
    root, split, seed, index, size, outliers, color, length, fps = args
    flag = has_outliers(seed, split, index, outliers, sequences=True)
    city, seq = sample_name(split, index, sequences=True)
    n = 0
    if outliers > 0:   # masks and their sidecars for every frame
        frames = render_sequence_details(seed, index, length, size, fps, split, flag)
        for frame, (image, label, mask, details) in enumerate(frames):
            if not flag:
                mask = np.where(label == K.IGNORE_ID, VOID, INLIER).astype(np.uint8)
            cs.write_sample(root, split, city, seq, frame, image, label, mask, color)
            cs.write_outlier_details(root, split, city, seq, frame, details)
            n += 1
        return n
    for frame, (image, label, _) in enumerate(render_sequence(seed, index, length, size, fps, split, False)):
        cs.write_sample(root, split, city, seq, frame, image, label, None, color)
        n += 1
    return n


def _init_worker():
    try:
        cv2.setNumThreads(1)
    except Exception:  # pragma: no cover - very old OpenCV
        pass


def _run_jobs(fn, jobs, workers, progress, weight=1):
    total = len(jobs) * weight
    done = 0
    if progress:
        progress(0, total)
    if workers and workers > 1 and len(jobs) > 1:
        import multiprocessing
        pool = multiprocessing.Pool(int(workers), initializer=_init_worker)
        try:
            for n in pool.imap_unordered(fn, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers)))):
                done += n
                if progress:
                    progress(done, total)
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    else:
        for job in jobs:
            done += fn(job)
            if progress:
                progress(done, total)
    return done


def _check_args(count, outliers):
    if int(count) < 0:
        raise UserError("count must be >= 0")
    if not 0.0 <= float(outliers) <= 1.0:
        raise UserError("--outliers must be a fraction in 0..1, got {}".format(outliers))


def write_split(root, split="train", count=2000, seed=0, size=DEFAULT_SIZE, outliers=0.0, workers=1,
                progress=None, color=False):
    """Write ``count`` images with labels in the Cityscapes layout under ROOT; returns the count.

    ``outliers`` is the fraction of images with outlier objects; when > 0 every image
    also gets ``*_gtFine_outlierMask.png``. ``progress(done, total)`` is called as images finish.
    """
    size = _size(size)
    _check_args(count, outliers)
    _check_root(root)
    jobs = [(root, split, int(seed), i, size, float(outliers), bool(color)) for i in range(int(count))]
    n = _run_jobs(_write_image_job, jobs, workers, progress)
    cs.write_split_info(root, split, "images", {
        "generator": "export.scenes", "count": int(count), "seed": int(seed),
        "size": [size[0], size[1]], "outliers": float(outliers), "cities": list(cities(split))})
    return n


def write_sequences(root, split="val", count=20, length=DEFAULT_LENGTH, fps=DEFAULT_FPS, seed=1,
                    size=DEFAULT_SIZE, outliers=0.0, workers=1, progress=None, color=False):
    """Write ``count`` sequences of ``length`` frames (Cityscapes layout, frames 0..length-1)."""
    size = _size(size)
    _check_args(count, outliers)
    if int(length) < 1:
        raise UserError("--length must be >= 1")
    if float(fps) <= 0:
        raise UserError("--fps must be > 0")
    _check_root(root)
    jobs = [(root, split, int(seed), i, size, float(outliers), bool(color), int(length), float(fps))
            for i in range(int(count))]
    n = _run_jobs(_write_sequence_job, jobs, workers, progress, weight=int(length))
    cs.write_split_info(root, split, "sequences", {
        "generator": "export.scenes", "count": int(count), "length": int(length), "fps": float(fps),
        "seed": int(seed), "size": [size[0], size[1]], "outliers": float(outliers),
        "cities": list(cities(split, sequences=True))})
    return n


CHECK_FRAMES_SEED = 4242   # the plan check's scenes (runtime/plan/check_frames), as before the move
CHECK_FRAMES_QUALITY = 92  # JPEG: four 256x512 scenes in ~250 KB of the device package


def write_check_frames(folder, count=4, size=(256, 512)):
    """The road scenes rt-plan's post-build check runs on by default, written as
    ``scene_<i>.jpg`` into ``folder`` (runtime/plan/check_frames, shipped with the device
    package, where this generator is not). Regenerate with
    ``python -c "from export.scenes import write_check_frames as w; w('runtime/plan/check_frames')"``;
    tests/test_plan_build.py checks the shipped files are these scenes."""
    os.makedirs(str(folder), exist_ok=True)
    paths = []
    for index in range(count):
        path = os.path.join(str(folder), "scene_{}.jpg".format(index))
        frame = render_scene(seed=CHECK_FRAMES_SEED, index=index, size=size)[0]
        if not cv2.imwrite(path, frame, [cv2.IMWRITE_JPEG_QUALITY, CHECK_FRAMES_QUALITY]):
            raise UserError("cannot write {}".format(path))
        paths.append(path)
    return paths


def write_video(path, frames=300, fps=30.0, seed=0, size=DEFAULT_SIZE, progress=None):
    """Write one continuous drive as an MP4 ('mp4v'); returns the frame count read back.

    The output is checked like every output (runtime.jsonfile.check_output: never an engine,
    a checkpoint, a FIFO or a device) and written to a temporary file beside it, renamed into
    place only once complete: a kill or a full disk leaves the previous video untouched."""
    import os

    from runtime.jsonfile import VIDEO_EXTENSIONS, check_output, remove_quietly, replace_file, temp_path
    size = _size(size)
    if int(frames) < 1:
        raise UserError("--frames must be >= 1")
    if not 0 < float(fps) <= 1000:
        raise UserError("--fps must be a frame rate between 0 and 1000")
    path = check_output(path, "output", allow=VIDEO_EXTENSIONS)
    directory = os.path.dirname(os.path.abspath(path))
    _check_root(directory)
    tmp = temp_path(path, suffix=os.path.splitext(path)[1])
    try:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (size[1], size[0]))
        if not writer.isOpened():
            raise UserError("cannot open a video writer for {} (OpenCV without an MP4 encoder?)".format(path))
        try:
            if progress:
                progress(0, int(frames))
            for i, image in enumerate(video_frames(seed, frames, size, fps)):
                writer.write(image)
                if progress:
                    progress(i + 1, int(frames))
        finally:
            writer.release()
        count = _frames_in(tmp)
        if count != int(frames):
            raise UserError("{}: the video reads back {} frames instead of {} (a full disk?); it was "
                            "not written".format(path, count or "no", frames))
        replace_file(tmp, path)
        return count
    finally:
        remove_quietly(tmp)


def _frames_in(path):
    """The frame count OpenCV reads back from ``path`` (None when it cannot open it)."""
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return None
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return count if count > 0 else None
    finally:
        cap.release()
