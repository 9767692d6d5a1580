"""Analyse frames of a session as a retoucher would: faces, focus, light, pose, eyes, framing and file quality,
ending in a score 0..100 with the reasons behind it.

Analysis runs on a small preview. Only JPEG blockiness is measured on a full-resolution crop of the face, because
it lives on the file's own 8-pixel grid.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from . import analysis_measures as measures
from .analysis_reasons import SECOND_FACE_SIZE, Reason, frame_score, judge_frame
from .errors import MESSAGES as ERROR_MESSAGES
from .errors import HeadshotError, register_messages
from .faces import Face, shared_finder
from .i18n import N_
from .models import shared_segmenter

log = logging.getLogger(__name__)

register_messages(
    {"unreadable": N_("{file} could not be read as a photo ({reason}). Export it again as JPEG, PNG or TIFF.")}
)

PREVIEW_MAX_SIDE = 1600
SMALL_COPY_LONG_SIDE = 512  # the copy of the frame an analysis keeps, for crop planning

# Reads a region (x0, y0, x1, y1, in original pixels after EXIF orientation) of the original at full resolution,
# as 8-bit grey, in any orientation.
OriginalCropReader = Callable[[tuple[int, int, int, int]], np.ndarray | None]


@dataclass
class FaceRecord:
    """One face in original-image pixels: the detector's box and score, and the 478-point mesh when it fitted."""

    box: tuple[float, float, float, float]  # x, y, width, height; may reach past the frame edge
    score: float
    landmarks: np.ndarray | None = field(default=None, repr=False)  # (478, 3)
    eye_distance: float = 0.0
    detail_ratio: float | None = None  # see analysis_measures.octave_detail_ratio
    keypoints: np.ndarray | None = field(default=None, repr=False)  # (6, 2) detector points, as in faces.Face

    def to_dict(self, landmarks: bool = False) -> dict:
        data = {
            "box": [round(float(value), 1) for value in self.box],
            "score": round(self.score, 3),
            "eye_distance": round(self.eye_distance, 1),
            "has_mesh": self.landmarks is not None,
        }
        if landmarks and self.landmarks is not None:
            data["landmarks"] = np.round(self.landmarks, 1).tolist()
        return data


@dataclass
class FrameAnalysis:
    """Everything the selection and the report need to know about one frame."""

    path: str | None
    width: int  # original pixels, after EXIF orientation
    height: int
    faces: list[FaceRecord] = field(default_factory=list)
    subject: int | None = None  # index into `faces`
    subject_choice: str | None = None  # "only", "largest", "most_central" or "sharpest"
    metrics: dict = field(default_factory=dict)
    reasons: list[Reason] = field(default_factory=list)
    score: float = 0.0
    fingerprint: int | None = None  # perceptual hash, see analysis_measures.perceptual_hash
    error: HeadshotError | None = None
    small_copy: np.ndarray | None = field(default=None, repr=False, compare=False)  # 8-bit sRGB, upright, long side 512

    @property
    def has_face(self) -> bool:
        return self.subject is not None

    @property
    def subject_face(self) -> FaceRecord | None:
        return None if self.subject is None else self.faces[self.subject]

    @property
    def codes(self) -> list[str]:
        return [reason.code for reason in self.reasons]

    def to_dict(self, language: str | None = None, landmarks: bool = False) -> dict:
        """Return JSON-ready data: file, score, reasons (code and translated message), faces, metrics, error."""
        return {
            "file": self.path,
            "score": self.score,
            "width": self.width,
            "height": self.height,
            "reasons": [reason.to_dict(language) for reason in self.reasons],
            "faces": [face.to_dict(landmarks) for face in self.faces],
            "subject": None if self.subject is None else {"index": self.subject, "choice": self.subject_choice},
            "metrics": {name: _json_value(value) for name, value in self.metrics.items()},
            "error": None if self.error is None else self.error.to_dict(language),
        }


# ---------------------------------------------------------------------------------------------------------------
# Public entry points


def analyze_image(
    rgb: np.ndarray,
    *,
    original_size: tuple[int, int] | None = None,
    scale: float = 1.0,
    path: str | None = None,
    read_original_crop: OriginalCropReader | None = None,
) -> FrameAnalysis:
    """Analyse one frame given as an 8-bit sRGB array (h, w, 3).

    `scale` is preview pixels per original pixel and `original_size` the original's (width, height); all
    coordinates in the result are original pixels. Blockiness needs the file's own pixel grid: it is measured
    on `rgb` when `scale` is 1, else on `read_original_crop` when given, else left out.
    """
    # 1. Check the input and find the faces.
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an 8-bit RGB array (h, w, 3), got {rgb.dtype} {rgb.shape}")
    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    if original_size is None:
        original_size = (round(width / scale), round(height / scale))
    faces = shared_finder().find(rgb)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)

    # 2. Measure the frame as a whole, on a small copy: none of these needs fine detail.
    #    Black bars (a video frame) are left out: they would read as crushed shadows and a hard edge.
    small = measures.downscale(rgb, 512)
    metrics: dict = {"preview_scale": scale, "face_count": 0}
    left, top, right, bottom = measures.picture_box(small)
    picture = small[top:bottom, left:right]
    metrics["black_bars_pct"] = 100.0 * (1.0 - picture.shape[0] * picture.shape[1] / (small.shape[0] * small.shape[1]))
    metrics.update(measures.frame_exposure_measures(picture))
    metrics["color_cast_a"], metrics["color_cast_b"] = measures.color_cast(picture)
    fingerprint = measures.perceptual_hash(picture)
    analysis = FrameAnalysis(path=path, width=int(original_size[0]), height=int(original_size[1]), fingerprint=fingerprint)

    # 3. Measure every face, and choose the subject.
    for face in faces:
        if face.landmarks is not None:
            detail = measures.face_sharpness(gray, face.landmarks, face.eye_distance)
        else:
            detail = _box_sharpness(gray, face)
        analysis.faces.append(_record_in_original_pixels(face, scale, detail))
    if faces:
        subject, choice = choose_subject(analysis.faces, analysis.width, analysis.height)
        analysis.subject, analysis.subject_choice = subject, choice
        significant = [
            face for face in analysis.faces
            if face.eye_distance >= SECOND_FACE_SIZE * analysis.faces[subject].eye_distance
        ]
        metrics["face_count"] = len(significant)
        metrics.update(_subject_measures(rgb, gray, faces[subject], analysis.faces[subject], analysis, scale))
        metrics["blockiness"] = _subject_blockiness(gray, analysis.faces[subject], scale, read_original_crop)
        metrics["backdrop_clutter"] = measures.backdrop_clutter(picture, shared_segmenter().person_mask(picture))
    else:
        metrics["noise"] = measures.noise_level(gray)
        metrics["blockiness"] = measures.blockiness(gray) if scale == 1.0 else None

    # 4. Judge.
    position = None
    if analysis.subject is not None:
        order = sorted(range(len(analysis.faces)), key=lambda index: _center(analysis.faces[index].box)[0])
        position = order.index(analysis.subject) + 1
    analysis.metrics = {name: value for name, value in metrics.items() if value is not None}
    analysis.reasons = judge_frame(analysis.metrics, analysis.subject_choice, position)
    analysis.score = frame_score(analysis.reasons, metrics.get("face_detail_ratio"))
    return analysis


def analyze_file(path: str | Path, max_side: int = PREVIEW_MAX_SIDE) -> FrameAnalysis:
    """Analyse one photo file; a file that cannot be read gives an analysis carrying the error, with score 0."""
    from .photo_io import read_preview

    path_text = str(path)
    try:
        preview = read_preview(path, max_side=max_side)
    except HeadshotError as error:
        log.info("analysis: %s: not analysed: %s", path_text, error)
        return error_analysis(path_text, error)
    except (OSError, ValueError, SyntaxError) as error:  # decoders raise these for damaged data
        log.info("analysis: %s: not analysed: %s", path_text, error)
        return error_analysis(path_text, HeadshotError("unreadable", path_text, str(error), reason=type(error).__name__))

    info = preview.info
    reader = None
    if preview.scale < 1.0 and info.format != "heic":  # HEVC has no 8-pixel JPEG grid to measure
        reader = _OriginalCropReader(path_text, info.orientation or 1)
    try:
        analysis = analyze_image(
            preview.rgb,
            original_size=(info.width, info.height),
            scale=preview.scale,
            path=path_text,
            read_original_crop=reader,
        )
    except Exception as error:  # one frame's failure must not stop the rest of the session
        log.exception("analysis: %s: analysis failed", path_text)
        return error_analysis(path_text, HeadshotError("internal_error", path_text, repr(error)))
    analysis.metrics["format"] = info.format
    analysis.small_copy = _small_copy(preview.rgb)
    return analysis


def _small_copy(rgb: np.ndarray) -> np.ndarray:
    factor = SMALL_COPY_LONG_SIDE / max(rgb.shape[:2])
    if factor >= 1:
        return rgb
    size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def analyze_files(paths: Iterable[str | Path], max_side: int = PREVIEW_MAX_SIDE) -> list[FrameAnalysis]:
    """Analyse each file in turn; a bad file gives its error and never stops the others."""
    return [analyze_file(path, max_side=max_side) for path in paths]


def error_analysis(path: str, error: HeadshotError) -> FrameAnalysis:
    """Return the analysis of a file that could not be read: its error as the only reason, score 0."""
    fields = {"file": error.path or path, "log": "-", **error.params}
    reason = Reason(error.code, ERROR_MESSAGES[error.code], fields, 100.0, None, "problem")
    return FrameAnalysis(path=path, width=0, height=0, reasons=[reason], score=0.0, error=error)


# ---------------------------------------------------------------------------------------------------------------
# The subject


def choose_subject(faces: list[FaceRecord], width: int, height: int) -> tuple[int, str]:
    """Return the index of the main subject and why: "only", "largest", "most_central" or "sharpest".

    Size weighs most (the photographer filled the frame with the subject), then closeness to the centre, then
    focus (the photographer focused on the subject).
    """
    if len(faces) == 1:
        return 0, "only"

    # 1. Score each face on the three criteria, each 0..1.
    areas = np.array([face.box[2] * face.box[3] for face in faces], dtype=np.float64)
    half_diagonal = math.hypot(width, height) / 2
    centrality = np.array(
        [1.0 - math.hypot(*(np.array(_center(face.box)) - (width / 2, height / 2))) / half_diagonal for face in faces]
    )
    details = np.array([face.detail_ratio or 0.0 for face in faces])
    size_share = areas / areas.max()
    detail_share = details / max(details.max(), 1e-6)
    combined = 0.5 * size_share + 0.3 * centrality + 0.2 * detail_share
    subject = int(np.argmax(combined))

    # 2. Name the criterion on which the subject leads the others most clearly.
    others = [index for index in range(len(faces)) if index != subject]
    leads = {
        "largest": size_share[subject] / max(size_share[others].max(), 1e-6),
        "most_central": (centrality[subject] + 1e-6) / (centrality[others].max() + 1e-6),
        "sharpest": detail_share[subject] / max(detail_share[others].max(), 1e-6),
    }
    choice = max(leads, key=leads.get)
    return subject, choice


def _subject_measures(
    rgb: np.ndarray, gray: np.ndarray, face: Face, record: FaceRecord, analysis: FrameAnalysis, scale: float
) -> dict:
    metrics: dict = {}
    height, width = gray.shape

    # 1. Size in the original, and whether the frame edge cuts the face or the top of the head.
    metrics["face_width_px"] = record.box[2]
    metrics["face_share_pct"] = 100.0 * record.box[2] * record.box[3] / max(1, analysis.width * analysis.height)
    if record.landmarks is not None:
        metrics["eye_distance_px"] = record.eye_distance
    metrics["face_cut_edges"] = _cut_edges(face, width, height)
    if face.landmarks is not None:
        metrics["head_top_cut"] = bool(measures.crown_point(face.landmarks)[1] < 0)

    # 2. Focus.
    metrics["face_detail_ratio"] = record.detail_ratio

    # 3. Light and noise on the skin.
    if face.landmarks is not None:
        face_mask, skin_mask = measures.face_masks(gray.shape, face.landmarks)
    else:
        face_mask = skin_mask = _box_ellipse_mask(gray.shape, face.box)
    metrics.update(measures.exposure_measures(rgb, face_mask, skin_mask))
    metrics["noise"] = measures.noise_level(gray, skin_mask)

    # 4. Pose, eyes and mouth.
    if face.landmarks is not None:
        metrics["yaw"], metrics["pitch"], metrics["roll"] = measures.head_pose(face.landmarks)
        metrics["eye_openness_right"], metrics["eye_openness_left"] = measures.eye_openness(face.landmarks)
        metrics["mouth_open"], metrics["smile"] = measures.mouth_measures(face.landmarks)
    else:
        right_eye, left_eye = face.keypoints[0], face.keypoints[1]
        metrics["roll"] = float(np.degrees(np.arctan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])))
    return metrics


def _subject_blockiness(
    gray: np.ndarray, record: FaceRecord, scale: float, read_original_crop: OriginalCropReader | None
) -> float | None:
    # The face and a margin of half its size around it, at most 768 original pixels square: enough smooth skin
    # and backdrop to show the grid, which is the same all over the frame.
    x, y, box_width, box_height = record.box
    half = min(max(box_width, box_height), 384.0)
    center_x, center_y = x + box_width / 2, y + box_height / 2
    region = (int(center_x - half), int(center_y - half), int(center_x + half), int(center_y + half))
    if scale == 1.0:
        height, width = gray.shape
        x0, y0 = max(0, region[0]), max(0, region[1])
        x1, y1 = min(width, region[2]), min(height, region[3])
        crop = gray[y0:y1, x0:x1]
    elif read_original_crop is not None:
        crop = read_original_crop(region)
    else:
        return None
    if crop is None or min(crop.shape[:2]) < 40:
        return None
    return measures.blockiness(crop)


# ---------------------------------------------------------------------------------------------------------------
# Helpers


class _OriginalCropReader:
    """Reads a region of the original file at full resolution, for measures that need the file's own pixel grid."""

    # Where a pixel (x, y) of the upright image lies in the stored image of size (w, h), per EXIF orientation.
    _STORED_POSITION = {
        1: lambda x, y, w, h: (x, y),
        2: lambda x, y, w, h: (w - 1 - x, y),
        3: lambda x, y, w, h: (w - 1 - x, h - 1 - y),
        4: lambda x, y, w, h: (x, h - 1 - y),
        5: lambda x, y, w, h: (y, x),
        6: lambda x, y, w, h: (y, h - 1 - x),
        7: lambda x, y, w, h: (w - 1 - y, h - 1 - x),
        8: lambda x, y, w, h: (w - 1 - y, x),
    }

    def __init__(self, path: str, orientation: int):
        self.path = path
        self.orientation = orientation if orientation in self._STORED_POSITION else 1

    def __call__(self, region: tuple[int, int, int, int]) -> np.ndarray | None:
        from PIL import Image

        try:
            with Image.open(self.path) as image:
                stored_width, stored_height = image.size
                to_stored = self._STORED_POSITION[self.orientation]
                x0, y0, x1, y1 = region  # x1 and y1 exclusive, so the last pixel is at x1 - 1, y1 - 1
                corners = [
                    to_stored(x, y, stored_width, stored_height) for x in (x0, x1 - 1) for y in (y0, y1 - 1)
                ]
                xs, ys = [corner[0] for corner in corners], [corner[1] for corner in corners]
                box = (
                    max(0, min(xs)), max(0, min(ys)), min(stored_width, max(xs) + 1), min(stored_height, max(ys) + 1)
                )
                if box[2] - box[0] < 8 or box[3] - box[1] < 8:
                    return None
                # NOTE: Pillow decodes the whole file before cropping; a JPEG decoded straight to grey
                # (no chroma upsampling) takes about 0.1 s at 24 MP.
                if image.format == "JPEG":
                    image.draft("L", image.size)
                return np.asarray(image.crop(box).convert("L"))
        except (OSError, ValueError) as error:
            log.info("analysis: %s: no full-resolution crop for blockiness: %s", self.path, error)
            return None


def _record_in_original_pixels(face: Face, scale: float, detail: float | None) -> FaceRecord:
    original = face.scaled(1.0 / scale) if scale != 1.0 else face
    return FaceRecord(
        box=tuple(float(value) for value in original.box),
        score=float(face.score),
        landmarks=original.landmarks,
        eye_distance=original.eye_distance,
        detail_ratio=detail,
        keypoints=original.keypoints,
    )


def _cut_edges(face: Face, width: int, height: int) -> list[str]:
    """Return the frame edges ("left", "right", "top", "bottom") that the face touches or runs past."""
    if face.landmarks is not None:
        outline = face.landmarks[measures.FACE_OVAL, :2]
        x0, y0 = outline.min(axis=0)
        x1, y1 = outline.max(axis=0)
    else:
        x, y, box_width, box_height = face.box
        x0, y0, x1, y1 = x, y, x + box_width, y + box_height
    edges = []
    if x0 <= 0.5:
        edges.append("left")
    if x1 >= width - 1.5:
        edges.append("right")
    if y0 <= 0.5:
        edges.append("top")
    if y1 >= height - 1.5:
        edges.append("bottom")
    return edges


def _box_ellipse_mask(shape: tuple[int, int], box) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    x, y, box_width, box_height = box
    center = (int(x + box_width / 2), int(y + box_height / 2))
    axes = (max(1, int(box_width * 0.4)), max(1, int(box_height * 0.45)))
    cv2.ellipse(mask, center, axes, 0, 0, 360, 1, -1)
    return mask.astype(bool)


def _box_sharpness(gray: np.ndarray, face: Face) -> float | None:
    x, y, box_width, box_height = (int(round(value)) for value in face.box)
    crop = gray[max(0, y) : y + box_height, max(0, x) : x + box_width].astype(np.float32)
    if min(crop.shape) < 8:
        return None
    factor = min(1.0, measures.SHARPNESS_EYE_DISTANCE / max(face.eye_distance, 1.0))
    if factor < 1.0:
        crop = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return measures.octave_detail_ratio(crop, rounding_noise=factor)


def _center(box) -> tuple[float, float]:
    x, y, box_width, box_height = box
    return x + box_width / 2, y + box_height / 2


def _json_value(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 4)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return value
