"""Surface normals and depth of a head for relighting, built from the 478-point face mesh and the person matte.

Maps are made on a reduced "working grid" that covers one head: the mesh gives normals and depth inside the
face, an ellipsoid models the rest of the head, and the blurred matte gives soft normals for hair, neck
and shoulders. Camera coordinates throughout: X to the image right, Y up, Z towards the camera.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .device import channel_norm

MESH_POINTS = 468  # the tessellation covers the first 468 points; 468..477 are the irises
TARGET_FACE_WIDTH = 192  # face width on the working grid, in working pixels
HEAD_WIDTH_FACTOR = 1.12  # head half-width over the face oval's half-width
HEAD_HEIGHT_FACTOR = 1.18  # head half-height (with hair) over the face oval's half-height
HEAD_RAISE = 0.18  # head centre above the face-oval centre, in face-oval half-heights
CROP_REACH = 3.0  # the working grid reaches this many head radii from the head centre
MESH_NORMAL_BLUR = 0.015  # Gaussian sigma on mesh normals, in face widths
# Mirror-image cheek outlines: the subject's right cheek (image left) and left cheek (image right).
CHEEK_OUTLINES = (
    (50, 101, 118, 187, 205),
    (280, 330, 347, 411, 425),
)


@dataclass
class HeadFrame:
    """Placement of the head on the working grid: an ellipse turned by the face's roll, plus the grid mapping."""

    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels
    scale: float  # working pixels per image pixel
    center: np.ndarray  # head centre on the working grid (x, y)
    face_center: np.ndarray
    half_width: float  # head semi-axes on the working grid
    half_height: float
    face_half_width: float
    face_half_height: float
    roll: float  # radians; positive turns the face clockwise in the image
    grid_size: tuple[int, int]  # working height, width


@dataclass
class HeadMaps:
    """Per-pixel geometry on the working grid, as torch tensors on the pipeline device."""

    normals: torch.Tensor  # (3, h, w) unit vectors, camera coordinates
    depth: torch.Tensor  # (h, w) camera Z in working pixels; far behind the head where nothing is known
    face_mask: torch.Tensor  # (h, w) 1 where the mesh covers the image, feathered
    skin_mask: torch.Tensor  # (h, w) face skin without eyes, brows and lips (hard 0/1)
    head_radius: torch.Tensor  # (h, w) elliptical radius from the head centre, 1 at the head outline
    face_u: torch.Tensor  # (h, w) horizontal position across the face, -1..1 between the face-oval sides
    face_v: torch.Tensor  # (h, w) vertical position, -1 at the forehead top .. 1 at the chin
    cheeks: tuple[torch.Tensor, torch.Tensor]  # (h, w) bool: image-left cheek, image-right cheek


@functools.lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """Return the (T, 3) vertex triples of the face mesh, recovered as the 3-cycles of mediapipe's tessellation."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    neighbours: dict[int, set[int]] = {}
    for a, b in FACEMESH_TESSELATION:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    triangles = set()
    for a, b in FACEMESH_TESSELATION:
        for c in neighbours[a] & neighbours[b]:
            triangles.add(tuple(sorted((a, b, c))))
    return np.array(sorted(triangles), dtype=np.int64)


@functools.lru_cache(maxsize=1)
def feature_outlines() -> dict[str, np.ndarray]:
    """Return the landmark indices of the face oval and of the features that are not skin."""
    from mediapipe.python.solutions import face_mesh_connections as connections

    def points(edge_set) -> np.ndarray:
        return np.array(sorted({index for edge in edge_set for index in edge}), dtype=np.int64)

    return {
        "oval": points(connections.FACEMESH_FACE_OVAL),
        "right_eye": points(connections.FACEMESH_RIGHT_EYE),
        "left_eye": points(connections.FACEMESH_LEFT_EYE),
        "right_brow": points(connections.FACEMESH_RIGHT_EYEBROW),
        "left_brow": points(connections.FACEMESH_LEFT_EYEBROW),
        "lips": points(connections.FACEMESH_LIPS),
    }


def head_frame(landmarks: np.ndarray, image_size: tuple[int, int]) -> HeadFrame:
    """Place the head ellipse from the face oval and choose the working grid around it."""
    image_height, image_width = image_size
    oval = landmarks[feature_outlines()["oval"], :2]

    # 1. The face's roll from the eye line, and the oval's extent in the face's own axes.
    eye_line = landmarks[263, :2] - landmarks[33, :2]
    roll = math.atan2(float(eye_line[1]), float(eye_line[0]))
    rotation = np.array([[math.cos(roll), math.sin(roll)], [-math.sin(roll), math.cos(roll)]])
    face_center = oval.mean(axis=0)
    local = (oval - face_center) @ rotation.T
    face_half_width = max(float(np.ptp(local[:, 0])) / 2, 2.0)
    face_half_height = max(float(np.ptp(local[:, 1])) / 2, 2.0)
    face_center = face_center + np.array([local[:, 0].max() + local[:, 0].min(), local[:, 1].max() + local[:, 1].min()]) / 2 @ rotation

    # 2. The head: wider and taller than the face oval, centred a little above it.
    up = np.array([math.sin(roll), -math.cos(roll)])
    head_center = face_center + up * HEAD_RAISE * face_half_height
    half_width = HEAD_WIDTH_FACTOR * face_half_width
    half_height = HEAD_HEIGHT_FACTOR * face_half_height

    # 3. The crop reaches CROP_REACH head radii; the working scale brings the face to TARGET_FACE_WIDTH.
    reach = CROP_REACH * max(half_width, half_height)
    x0 = int(max(0, math.floor(head_center[0] - reach)))
    y0 = int(max(0, math.floor(head_center[1] - reach)))
    x1 = int(min(image_width, math.ceil(head_center[0] + reach)))
    y1 = int(min(image_height, math.ceil(head_center[1] + reach)))
    scale = min(1.0, TARGET_FACE_WIDTH / (2 * face_half_width))
    grid_size = (max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale)))
    origin = np.array([x0, y0], dtype=np.float64)

    return HeadFrame(
        crop=(x0, y0, x1, y1),
        scale=scale,
        center=(head_center - origin) * scale,
        face_center=(face_center - origin) * scale,
        half_width=half_width * scale,
        half_height=half_height * scale,
        face_half_width=face_half_width * scale,
        face_half_height=face_half_height * scale,
        roll=roll,
        grid_size=grid_size,
    )


def to_working_grid(landmarks: np.ndarray, frame: HeadFrame) -> np.ndarray:
    """Map (N, 3) image-pixel landmarks to working-grid pixels (z scaled alike)."""
    x0, y0 = frame.crop[:2]
    points = landmarks.astype(np.float64).copy()
    points[:, 0] = (points[:, 0] - x0) * frame.scale
    points[:, 1] = (points[:, 1] - y0) * frame.scale
    points[:, 2] = points[:, 2] * frame.scale
    return points


def vertex_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Return (N, 3) area-weighted vertex normals in camera coordinates, oriented away from the head's centre."""
    camera = np.stack([points[:, 0], -points[:, 1], -points[:, 2]], axis=1)
    corners = camera[triangles]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])

    # The tessellation carries no winding, so orient each triangle away from a point well behind the face.
    face_width = np.ptp(camera[:, 0])
    inside = camera.mean(axis=0) - np.array([0.0, 0.0, 0.6 * face_width])
    outward = corners.mean(axis=1) - inside
    flip = np.einsum("ij,ij->i", face_normals, outward) < 0
    face_normals[flip] *= -1

    normals = np.zeros_like(camera)
    for corner in range(3):
        np.add.at(normals, triangles[:, corner], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-9)


def rasterize_mesh(points: np.ndarray, grid_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterize the mesh: per-pixel normal (h, w, 3), camera depth (h, w) and coverage (h, w) bool.

    Triangles are drawn far to near, so the nearest surface wins where the face turns away. Values inside
    a triangle are interpolated barycentrically from its vertices.
    """
    height, width = grid_size
    triangles = mesh_triangles()
    points = points[:MESH_POINTS]
    normals = vertex_normals(points, triangles)
    camera_depth = -points[:, 2]

    # 1. Triangle ids, far to near (camera depth ascending), with 4 bits of sub-pixel precision.
    order = np.argsort(camera_depth[triangles].mean(axis=1))
    ids = np.zeros((height, width), dtype=np.int32)
    corners_fixed = np.round(points[triangles, :2] * 16).astype(np.int32)
    for index in order:
        cv2.fillConvexPoly(ids, corners_fixed[index], int(index) + 1, lineType=cv2.LINE_8, shift=4)
    covered = ids > 0

    # 2. Barycentric weights of each covered pixel inside its triangle.
    ys, xs = np.nonzero(covered)
    triangle_of_pixel = triangles[ids[ys, xs] - 1]
    a, b, c = (points[triangle_of_pixel[:, k], :2] for k in range(3))
    ab, ac = b - a, c - a
    determinant = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]
    determinant = np.where(np.abs(determinant) < 1e-9, 1e-9, determinant)
    offset_x, offset_y = xs - a[:, 0], ys - a[:, 1]
    weight_b = (offset_x * ac[:, 1] - offset_y * ac[:, 0]) / determinant
    weight_c = (ab[:, 0] * offset_y - ab[:, 1] * offset_x) / determinant
    weights = np.clip(np.stack([1 - weight_b - weight_c, weight_b, weight_c], axis=1), 0, 1)
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)

    # 3. Interpolate normals and depth.
    normal_map = np.zeros((height, width, 3), dtype=np.float32)
    depth_map = np.zeros((height, width), dtype=np.float32)
    pixel_normals = np.einsum("pk,pkc->pc", weights, normals[triangle_of_pixel])
    pixel_normals /= np.maximum(np.linalg.norm(pixel_normals, axis=1, keepdims=True), 1e-9)
    normal_map[ys, xs] = pixel_normals
    depth_map[ys, xs] = np.einsum("pk,pk->p", weights, camera_depth[triangle_of_pixel])
    return normal_map, depth_map, covered


def skin_mask(points: np.ndarray, covered: np.ndarray, face_width: float) -> np.ndarray:
    """Return the mesh's face skin as a bool map: the covered oval without eyes, brows and lips."""
    outlines = feature_outlines()
    features = np.zeros(covered.shape, dtype=np.uint8)
    for name in ("right_eye", "left_eye", "right_brow", "left_brow", "lips"):
        hull = cv2.convexHull(np.round(points[outlines[name], :2]).astype(np.int32))
        cv2.fillConvexPoly(features, hull, 1)
    margin = max(1, int(round(0.04 * face_width)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    features = cv2.dilate(features, kernel)
    eroded = cv2.erode(covered.astype(np.uint8), kernel)
    return (eroded > 0) & (features == 0)


def polygon_mask(points: np.ndarray, indices, grid_size: tuple[int, int]) -> np.ndarray:
    """Return the convex hull of some landmarks as a bool map of the working grid."""
    mask = np.zeros(grid_size, dtype=np.uint8)
    hull = cv2.convexHull(np.round(points[list(indices), :2]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask > 0


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur a (C, H, W) tensor with a separable Gaussian; edges are reflected."""
    if sigma <= 0.3:
        return image
    radius = max(1, int(math.ceil(3 * sigma)))
    radius = min(radius, max(1, min(image.shape[-2:]) - 1))
    offsets = torch.arange(-radius, radius + 1, device=image.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = image.shape[0]
    batch = image.unsqueeze(0)
    batch = F.pad(batch, (radius, radius, 0, 0), mode="reflect")
    batch = F.conv2d(batch, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    batch = F.pad(batch, (0, 0, radius, radius), mode="reflect")
    batch = F.conv2d(batch, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return batch.squeeze(0)


def head_maps(landmarks: np.ndarray, frame: HeadFrame, matte: torch.Tensor | None, device: torch.device) -> HeadMaps:
    """Build the working-grid normal and depth maps of one head.

    `matte` is the person matte already cut to the crop and resized to the working grid, (1, h, w), or None.
    """
    height, width = frame.grid_size
    points = to_working_grid(landmarks, frame)
    face_width = 2 * frame.face_half_width

    # 1. The mesh: rasterized normals and depth, and where its skin is.
    mesh_normals, mesh_depth, covered = rasterize_mesh(points, frame.grid_size)
    skin = skin_mask(points, covered, face_width)
    cheeks = tuple(torch.from_numpy(polygon_mask(points, outline, frame.grid_size)).to(device) for outline in CHEEK_OUTLINES)

    # 2. Head-ellipse coordinates of every pixel, in the face's own (rolled) axes.
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    cos_roll, sin_roll = math.cos(frame.roll), math.sin(frame.roll)

    def face_axes(center: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        dx, dy = xs - float(center[0]), ys - float(center[1])
        return dx * cos_roll + dy * sin_roll, -dx * sin_roll + dy * cos_roll

    across, down = face_axes(frame.center)
    ellipse_u = across / frame.half_width
    ellipse_v = down / frame.half_height
    head_radius = torch.sqrt(ellipse_u**2 + ellipse_v**2)
    face_across, face_down = face_axes(frame.face_center)
    face_u = face_across / frame.face_half_width
    face_v = face_down / frame.face_half_height

    # 3. The ellipsoid proxy: its normal tilts at most ~70° from the camera, so that its outline is no hard edge.
    tilt = 0.85
    height_on_ellipsoid = torch.sqrt(torch.clamp(1 - head_radius**2, min=0.0))
    local_x = tilt * ellipse_u
    local_y = -tilt * ellipse_v
    proxy_x = local_x * cos_roll + local_y * sin_roll
    proxy_y = -local_x * sin_roll + local_y * cos_roll
    ellipsoid_normals = torch.stack([proxy_x, proxy_y, height_on_ellipsoid + 0.35])
    ellipsoid_normals = ellipsoid_normals / channel_norm(ellipsoid_normals)

    # 4. Blend mesh normals into the ellipsoid across a feathered edge of the mesh.
    feather = 0.04 * face_width
    covered_tensor = torch.from_numpy(covered.astype(np.float32)).to(device)
    face_mask = gaussian_blur(covered_tensor[None], feather)[0]
    face_weight = torch.clamp(2 * face_mask - 1, 0, 1) * covered_tensor
    mesh_normal_tensor = torch.from_numpy(mesh_normals).to(device).permute(2, 0, 1)
    mesh_normal_tensor = gaussian_blur(mesh_normal_tensor, MESH_NORMAL_BLUR * face_width)
    mesh_normal_tensor = mesh_normal_tensor / channel_norm(mesh_normal_tensor).clamp_min(1e-6)
    normals = face_weight * mesh_normal_tensor + (1 - face_weight) * ellipsoid_normals

    # 5. Hair, neck and shoulders: normals from the blurred matte, taking over outside the head ellipse.
    if matte is not None:
        edge_sigma = 0.08 * face_width
        soft_matte = gaussian_blur(matte, edge_sigma)[0]
        gradient_y, gradient_x = torch.gradient(soft_matte)
        steepness = torch.clamp(
            torch.sqrt(gradient_x**2 + gradient_y**2) * edge_sigma * math.sqrt(2 * math.pi), 0, 0.97
        )
        direction = torch.stack([-gradient_x, gradient_y])
        direction = direction / channel_norm(direction).clamp_min(1e-6)
        matte_normals = torch.cat([direction * steepness, torch.sqrt(1 - steepness**2)[None]])
        outside_head = torch.clamp((head_radius - 0.85) / 0.35, 0, 1) * (1 - face_weight)
        normals = (1 - outside_head) * normals + outside_head * matte_normals
    normals = normals / channel_norm(normals).clamp_min(1e-6)

    # 6. Depth: the mesh where it covers, the ellipsoid elsewhere on the head, far behind off the head.
    depth_semi_axis = frame.half_width
    oval = points[feature_outlines()["oval"]]
    oval_radius = _ellipse_radius(oval[:, :2], frame)
    ellipsoid_surface_at_oval = depth_semi_axis * np.sqrt(np.clip(1 - oval_radius**2, 0, 1))
    depth_offset = float(np.median(-oval[:, 2] - ellipsoid_surface_at_oval))
    ellipsoid_depth = depth_offset + depth_semi_axis * height_on_ellipsoid
    far_behind = depth_offset - 2 * depth_semi_axis
    ellipsoid_depth = torch.where(head_radius < 1, ellipsoid_depth, torch.full_like(ellipsoid_depth, far_behind))
    depth = covered_tensor * torch.from_numpy(mesh_depth).to(device) + (1 - covered_tensor) * ellipsoid_depth

    return HeadMaps(
        normals=normals,
        depth=depth,
        face_mask=face_mask,
        skin_mask=torch.from_numpy(skin.astype(np.float32)).to(device),
        head_radius=head_radius,
        face_u=face_u,
        face_v=face_v,
        cheeks=cheeks,
    )


def _ellipse_radius(points: np.ndarray, frame: HeadFrame) -> np.ndarray:
    cos_roll, sin_roll = math.cos(frame.roll), math.sin(frame.roll)
    dx, dy = points[:, 0] - frame.center[0], points[:, 1] - frame.center[1]
    across = dx * cos_roll + dy * sin_roll
    down = -dx * sin_roll + dy * cos_roll
    return np.sqrt((across / frame.half_width) ** 2 + (down / frame.half_height) ** 2)
