"""Find faces and their 478-point mesh with the models that ship inside the mediapipe wheel.

The mesh's own detector is short-range and misses small faces (standing portraits,
group shots), so faces are found with the full-range detector first and the mesh
runs on a square crop around each face; its points are mapped back to the frame.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from .models import build_graph, quiet_native_logs

# Landmark indices of the refined 478-point mesh (mediapipe face_mesh, refine_landmarks=True).
# "Left" and "right" are the subject's own; the subject's right eye is on the left of the image.
RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_INNER, LEFT_EYE_OUTER = 362, 263
RIGHT_EYE_UPPER, RIGHT_EYE_LOWER = 159, 145
LEFT_EYE_UPPER, LEFT_EYE_LOWER = 386, 374
NOSE_TIP = 1
CHIN = 152
FOREHEAD_TOP = 10
MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER = 291, 61
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
RIGHT_CHEEK, LEFT_CHEEK = 205, 425
RIGHT_FACE_EDGE, LEFT_FACE_EDGE = 234, 454

MESH_INPUT_SIZE = 384
MESH_CROP_MARGIN = 1.0  # half the crop's side, in face-box sizes around the box centre


@dataclass
class Face:
    """One face in a frame; all coordinates are pixels of the image it was found in."""

    box: tuple[float, float, float, float]  # x, y, width, height; may reach past the frame edge
    score: float
    keypoints: np.ndarray  # (6, 2): right eye, left eye, nose tip, mouth, right ear, left ear
    landmarks: np.ndarray | None = field(default=None, repr=False)  # (478, 3), z in pixel units

    @property
    def center(self) -> tuple[float, float]:
        x, y, width, height = self.box
        return x + width / 2, y + height / 2

    @property
    def eye_centers(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the subject's right and left eye centres (image left, image right)."""
        if self.landmarks is not None:
            return self.landmarks[RIGHT_IRIS_CENTER, :2], self.landmarks[LEFT_IRIS_CENTER, :2]
        return self.keypoints[0], self.keypoints[1]

    @property
    def eye_distance(self) -> float:
        right, left = self.eye_centers
        return float(np.hypot(*(left - right)))

    def scaled(self, factor: float) -> "Face":
        """Return the same face in an image scaled by `factor`."""
        x, y, width, height = self.box
        return Face(
            box=(x * factor, y * factor, width * factor, height * factor),
            score=self.score,
            keypoints=self.keypoints * factor,
            landmarks=None if self.landmarks is None else self.landmarks * factor,
        )


class FaceFinder:
    """Full-range face detection plus a refined face mesh per face.

    The mediapipe graphs are not safe to call from two threads at once, so calls
    are serialised by a lock; build one finder per process and reuse it.
    """

    def __init__(self, min_score: float = 0.5):
        import mediapipe as mp


        self._detector = build_graph(
            lambda: mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_score)
        )
        self._mesh = build_graph(
            lambda: mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, refine_landmarks=True, max_num_faces=1, min_detection_confidence=0.3
            )
        )
        self._lock = threading.Lock()
        self._mesh_has_found_a_face = False

    def find(self, rgb: np.ndarray, with_mesh: bool = True) -> list[Face]:
        """Return the faces in an 8-bit RGB image, largest first, each with its mesh when one fits."""
        # 1. Detect on the whole frame, then on square windows if a tall or wide frame hid them.
        faces = self._detect(rgb, offset=(0, 0))
        if not faces and max(rgb.shape[:2]) > 1.3 * min(rgb.shape[:2]):
            faces = _suppress_overlaps(
                [face for window, offset in _square_windows(rgb) for face in self._detect(window, offset)]
            )

        # 2. Run the mesh on a crop around each face.
        if with_mesh:
            for face in faces:
                face.landmarks = self._mesh_for(rgb, face)

        faces.sort(key=lambda face: face.box[2] * face.box[3], reverse=True)
        return faces

    def _detect(self, rgb: np.ndarray, offset: tuple[int, int]) -> list[Face]:
        height, width = rgb.shape[:2]
        with self._lock:
            result = self._detector.process(np.ascontiguousarray(rgb))
        faces = []
        for detection in result.detections or []:
            relative = detection.location_data.relative_bounding_box
            keypoints = np.array(
                [[point.x * width, point.y * height] for point in detection.location_data.relative_keypoints],
                dtype=np.float32,
            )
            keypoints += np.array(offset, dtype=np.float32)
            box = (
                relative.xmin * width + offset[0],
                relative.ymin * height + offset[1],
                relative.width * width,
                relative.height * height,
            )
            faces.append(Face(box=box, score=float(detection.score[0]), keypoints=keypoints))
        return faces

    def _mesh_for(self, rgb: np.ndarray, face: Face) -> np.ndarray | None:
        import cv2

        # 1. Cut a square around the face, clipped to the frame.
        height, width = rgb.shape[:2]
        center_x, center_y = face.center
        half = MESH_CROP_MARGIN * max(face.box[2], face.box[3])
        x0, y0 = int(max(0, center_x - half)), int(max(0, center_y - half))
        x1, y1 = int(min(width, center_x + half)), int(min(height, center_y + half))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        crop = rgb[y0:y1, x0:x1]

        # 2. Bring the crop to the mesh's working size; the mesh model itself sees 192×192.
        scale = MESH_INPUT_SIZE / max(crop.shape[:2])
        if scale < 1:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        else:
            scale = 1.0
        with self._lock:
            if self._mesh_has_found_a_face:
                result = self._mesh.process(np.ascontiguousarray(crop))
            else:
                # The graph's landmark stage logs a native warning on its first face; keep it quiet.
                with quiet_native_logs():
                    result = self._mesh.process(np.ascontiguousarray(crop))
        if not result.multi_face_landmarks:
            return None
        self._mesh_has_found_a_face = True

        # 3. Map the points back to frame pixels.
        crop_height, crop_width = crop.shape[:2]
        points = np.array(
            [[point.x, point.y, point.z] for point in result.multi_face_landmarks[0].landmark], dtype=np.float32
        )
        points[:, 0] = points[:, 0] * crop_width / scale + x0
        points[:, 1] = points[:, 1] * crop_height / scale + y0
        points[:, 2] = points[:, 2] * crop_width / scale

        # 4. Reject a mesh that landed on another face in the crop.
        mesh_center = points[:, :2].mean(axis=0)
        if np.hypot(*(mesh_center - np.array(face.center))) > 0.5 * max(face.box[2], face.box[3]):
            return None
        return points


_shared_finder: FaceFinder | None = None
_shared_lock = threading.Lock()


def shared_finder() -> FaceFinder:
    """Return the process-wide finder, building it on first use (about 0.2 s)."""
    global _shared_finder
    with _shared_lock:
        if _shared_finder is None:
            _shared_finder = FaceFinder()
        return _shared_finder


def _square_windows(rgb: np.ndarray):
    height, width = rgb.shape[:2]
    side = min(height, width)
    long_side = max(height, width)
    positions = sorted({int(position) for position in np.arange(0, long_side - side + 1, side / 2)} | {long_side - side})
    for position in positions:
        if height > width:
            yield rgb[position : position + side, :], (0, position)
        else:
            yield rgb[:, position : position + side], (position, 0)


def _suppress_overlaps(faces: list[Face], max_overlap: float = 0.4) -> list[Face]:
    kept: list[Face] = []
    for face in sorted(faces, key=lambda face: face.score, reverse=True):
        if all(_box_iou(face.box, other.box) < max_overlap for other in kept):
            kept.append(face)
    return kept


def _box_iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter_w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    inter_h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    intersection = inter_w * inter_h
    union = aw * ah + bw * bh - intersection
    return intersection / union if union > 0 else 0.0
