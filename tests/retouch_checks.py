"""Measure the retouch stage as an outside checker would: plant dark-red spots, retouch, and report four figures.

The figures are the spots' contrast reduction, the fine skin texture kept, the change outside the
face and the movement of re-detected mesh landmarks. Run `python tests/retouch_checks.py` for the
full table over the shared photos and their scaled, enlarged and darkened versions.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pipeline.device import to_pixels, to_tensor  # noqa: E402
from pipeline.faces import Face  # noqa: E402
from pipeline.retouch import RetouchSettings, retouch  # noqa: E402
from pipeline.retouch.masks import FACE_OVAL, fill_polygons  # noqa: E402

# Two layouts of spots on cheek and forehead mesh points, each with texture patches on
# other cheek and forehead points, away from every spot.
SPOT_LAYOUTS = {
    "A": {
        "spots": (50, 280, 205, 425, 108, 337, 151, 118, 347),
        "texture": (101, 330, 123, 352, 104, 333),
    },
    "B": {
        "spots": (101, 330, 187, 411, 69, 299, 104, 333, 123),
        "texture": (50, 280, 205, 425, 151, 337),
    },
}
SPOT_RADII = (2, 3, 4, 5, 6, 2, 3, 4, 5)
SPOT_COLOURS = np.array([[120, 40, 40], [140, 50, 50], [105, 35, 40]], dtype=np.float32)

# Acceptance limits of the outside checker, and the margins this project aims for.
MIN_CONTRAST_REDUCTION = 0.75
TEXTURE_KEPT_RANGE = (0.40, 0.90)
MAX_OUTSIDE_CHANGE = 1.0
MAX_LANDMARK_SHIFT = 1.5
TARGET_CONTRAST_REDUCTION = 0.85
TARGET_TEXTURE_KEPT_RANGE = (0.50, 0.85)
TARGET_LANDMARK_SHIFT = 1.2


@dataclass
class Spot:
    x: float
    y: float
    radius: float
    point: int  # the mesh point it sits on


@dataclass
class Figures:
    """The four acceptance figures of one retouched portrait."""

    name: str
    eye_distance: float
    contrast_reduction: np.ndarray  # per spot, 1 = gone
    texture_kept: float  # fine-band energy after / before, away from spots
    outside_change: float  # mean absolute difference, 8-bit levels, near the face but outside it
    landmark_shift: float  # percent of the eye distance: retouched against clean frame, the worse of two
    shift_from_spotted: float  # percent: retouched spotted frame against the spotted frame itself
    spots_shift: float  # percent: spotted frame against clean frame, the floor of `shift_from_spotted`
    seconds: float = 0.0
    spots: list[Spot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def failures(self, targets: bool = False) -> list[str]:
        """Return the figures that miss the acceptance limits, or the project's targets with `targets`."""
        minimum = TARGET_CONTRAST_REDUCTION if targets else MIN_CONTRAST_REDUCTION
        low, high = TARGET_TEXTURE_KEPT_RANGE if targets else TEXTURE_KEPT_RANGE
        shift = TARGET_LANDMARK_SHIFT if targets else MAX_LANDMARK_SHIFT
        missed = []
        if self.contrast_reduction.min() < minimum:
            missed.append(f"spot {self.contrast_reduction.min():.2f}")
        if not low <= self.texture_kept <= high:
            missed.append(f"texture {self.texture_kept:.2f}")
        if self.outside_change >= MAX_OUTSIDE_CHANGE:
            missed.append(f"outside {self.outside_change:.2f}")
        if self.landmark_shift > shift:
            missed.append(f"shift {self.landmark_shift:.2f}")
        return missed

    def row(self) -> str:
        reduction = self.contrast_reduction
        verdict = ", ".join(self.failures()) or ("ok" if not self.failures(targets=True) else "ok (below target)")
        return (
            f"{self.name:28s} {self.eye_distance:5.0f} {reduction.min():6.2f} {reduction.mean():6.2f} "
            f"{self.texture_kept:6.2f} {self.outside_change:6.2f} {self.landmark_shift:6.2f} "
            f"{self.shift_from_spotted:6.2f} {self.spots_shift:6.2f} {self.seconds:6.2f}  {verdict}"
        )


TABLE_HEADER = (
    f"{'case':28s} {'eyes':>5s} {'spotmn':>6s} {'spotav':>6s} {'textur':>6s} {'outsid':>6s} {'shift':>6s} "
    f"{'sh/spt':>6s} {'spots':>6s} {'secs':>6s}  verdict"
)


# ---------------------------------------------------------------- planting and measuring


def plant_spots(rgb: np.ndarray, face: Face, layout: str = "A") -> tuple[np.ndarray, list[Spot]]:
    """Blend dark-red spots (radius 2–6 px, 50–70 % opacity, a 2-px soft edge) onto cheek and forehead mesh points.

    A spot whose disk would reach past the mesh's face oval, or whose surroundings are far
    darker than the cheeks (hair), is left out.
    """
    planted = rgb.copy()
    spots = []
    # On a turned face some cheek points lie beyond the visible face contour, and a fringe may
    # cover forehead points: a spot there would sit on hair, far darker than the cheeks.
    oval = face.landmarks[list(FACE_OVAL), :2].astype(np.float32).reshape(-1, 1, 2)
    skin_luma = float(np.median([
        local_luma(rgb, *face.landmarks[point, :2], 0.05 * face.eye_distance + 2) for point in (50, 280, 205, 425)
    ]))
    for index, (point, radius) in enumerate(zip(SPOT_LAYOUTS[layout]["spots"], SPOT_RADII)):
        x, y = (float(value) for value in face.landmarks[point, :2])
        reach = radius + 8
        if not (reach <= x <= rgb.shape[1] - reach and reach <= y <= rgb.shape[0] - reach):
            continue
        if cv2.pointPolygonTest(oval, (x, y), True) < radius + 2:
            continue
        if local_luma(rgb, x, y, radius + 5) < 0.5 * skin_luma:
            continue
        x0, y0 = max(0, int(x - radius - 3)), max(0, int(y - radius - 3))
        x1, y1 = min(rgb.shape[1], int(x + radius + 4)), min(rgb.shape[0], int(y + radius + 4))
        rows, columns = np.mgrid[y0:y1, x0:x1]
        distance = np.hypot(columns + 0.5 - x, rows + 0.5 - y)
        opacity = 0.5 + 0.1 * (index % 3)
        alpha = (opacity * np.clip((radius + 1 - distance) / 2, 0, 1))[..., None]
        window = planted[y0:y1, x0:x1].astype(np.float32)
        blended = window * (1 - alpha) + spot_colour(window, index) * alpha
        planted[y0:y1, x0:x1] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
        spots.append(Spot(x, y, radius, point))
    return planted, spots


def local_luma(rgb: np.ndarray, x: float, y: float, reach: float) -> float:
    """Return the median BT.601 luma of the square of half-side `reach` around (x, y)."""
    x0, y0 = max(0, int(x - reach)), max(0, int(y - reach))
    window = rgb[y0 : int(y + reach) + 1, x0 : int(x + reach) + 1].astype(np.float32)
    return float(np.median(window @ np.array([0.299, 0.587, 0.114], dtype=np.float32)))


def spot_colour(window: np.ndarray, index: int) -> np.ndarray:
    """Return a dark red for spot `index`, darkened where needed to keep its luma under 40 % of the skin's.

    On dark skin the fixed dark reds would be about as dark as the skin and hardly visible.
    """
    colour = SPOT_COLOURS[index % 3]
    skin_luma = float(np.median(window @ np.array([0.299, 0.587, 0.114], dtype=np.float32)))
    colour_luma = float(colour @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    return colour * min(1.0, 0.4 * skin_luma / colour_luma)


def spot_contrasts(rgb: np.ndarray, spots: list[Spot]) -> np.ndarray:
    """Return each spot's contrast: the RGB distance between its disk's mean and the mean of a ring 2–5 px outside it.

    Where spots crowd on a small face, the ring leaves out the other spots and their soft edges.
    """
    contrasts = []
    for spot in spots:
        reach = int(spot.radius + 7)
        x0, y0 = max(0, int(spot.x) - reach), max(0, int(spot.y) - reach)
        window = rgb[y0 : int(spot.y) + reach, x0 : int(spot.x) + reach].astype(np.float32)
        rows, columns = np.mgrid[: window.shape[0], : window.shape[1]]
        distance = np.hypot(columns + x0 + 0.5 - spot.x, rows + y0 + 0.5 - spot.y)
        ring = (distance >= spot.radius + 2) & (distance <= spot.radius + 5)
        for other in spots:
            if other is not spot:
                ring &= np.hypot(columns + x0 + 0.5 - other.x, rows + y0 + 0.5 - other.y) > other.radius + 2
        if ring.sum() < 8:
            ring = (distance >= spot.radius + 2) & (distance <= spot.radius + 5)
        disk = window[distance <= spot.radius].mean(axis=0)
        contrasts.append(float(np.linalg.norm(disk - window[ring].mean(axis=0))))
    return np.array(contrasts)


def fine_band(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Return the band-pass (difference of Gaussians, sigma 1 and 3 px) of the grey image inside `box`."""
    x0, y0, x1, y1 = box
    gray = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.GaussianBlur(gray, (0, 0), 1) - cv2.GaussianBlur(gray, (0, 0), 3)


def texture_patches(face: Face, spots: list[Spot], layout: str, box) -> np.ndarray:
    """Return skin patches around the layout's texture points, at least 8 px clear of every spot.

    A point whose patch would reach past the mesh's face oval (the far cheek of a turned
    face) is left out, so that no patch contains the face's outline or the backdrop.
    """
    x0, y0, x1, y1 = box
    rows, columns = np.mgrid[y0:y1, x0:x1]
    patches = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    patch_radius = max(6.0, 0.08 * face.eye_distance)
    oval = face.landmarks[list(FACE_OVAL), :2].astype(np.float32).reshape(-1, 1, 2)
    for point in SPOT_LAYOUTS[layout]["texture"]:
        x, y = face.landmarks[point, :2]
        if cv2.pointPolygonTest(oval, (float(x), float(y)), True) < patch_radius + 3:
            continue
        patches |= np.hypot(columns - x, rows - y) < patch_radius
    for spot in spots:
        patches &= np.hypot(columns - spot.x, rows - spot.y) > spot.radius + 8
    return patches


def face_box(face: Face, shape, margin: float = 0.3) -> tuple[int, int, int, int]:
    points = face.landmarks[:, :2]
    reach = margin * face.eye_distance + 12
    x0, y0 = (max(0, int(value - reach)) for value in points.min(axis=0))
    x1 = min(shape[1], int(points[:, 0].max() + reach))
    y1 = min(shape[0], int(points[:, 1].max() + reach))
    return x0, y0, x1, y1


def texture_kept(before: np.ndarray, after: np.ndarray, face: Face, spots: list[Spot], layout: str) -> float:
    box = face_box(face, before.shape)
    patches = texture_patches(face, spots, layout, box)
    return float((fine_band(after, box)[patches] ** 2).mean() / (fine_band(before, box)[patches] ** 2).mean())


def outside_change(before: np.ndarray, after: np.ndarray, faces: list[Face]) -> float:
    """Return the mean absolute difference (8-bit levels) beyond every face oval grown by 0.1 eye distances.

    Only pixels within one eye distance of the main face count (its hair, collar and
    the backdrop beside it), so a large frame does not dilute the figure.
    """
    main = faces[0]
    box = face_box(main, before.shape, margin=1.6)
    x0, y0, x1, y1 = box
    shape = (y1 - y0, x1 - x0)
    origin = np.array([x0, y0], dtype=np.float32)
    faces_mask = np.zeros(shape, dtype=np.uint8)
    for face in faces:
        if face.landmarks is None:
            continue
        oval = fill_polygons(shape, [face.landmarks[list(FACE_OVAL), :2] - origin])
        size = 2 * max(1, int(0.1 * face.eye_distance)) + 1
        faces_mask |= cv2.dilate(oval, np.ones((size, size), np.uint8))
    near = fill_polygons(shape, [main.landmarks[list(FACE_OVAL), :2] - origin])
    size = 2 * int(main.eye_distance) + 1
    near = cv2.dilate(near, np.ones((size, size), np.uint8))
    region = (near > 0) & (faces_mask == 0)
    difference = np.abs(after[y0:y1, x0:x1].astype(np.float32) - before[y0:y1, x0:x1])
    return float(difference[region].mean())


def landmark_shift(before: Face, after: Face) -> float:
    """Return the mean movement of the 478 mesh points in percent of the eye distance."""
    movement = np.hypot(*(after.landmarks[:, :2] - before.landmarks[:, :2]).T)
    return float(movement.mean() / before.eye_distance * 100)


def matching_face(faces: list[Face], reference: Face) -> Face | None:
    """Return the face with a mesh whose centre is nearest the reference's, if within half an eye distance."""
    best, best_distance = None, 0.5 * reference.eye_distance
    center = reference.landmarks[:, :2].mean(axis=0)
    for face in faces:
        if face.landmarks is None:
            continue
        distance = float(np.hypot(*(face.landmarks[:, :2].mean(axis=0) - center)))
        if distance < best_distance:
            best, best_distance = face, distance
    return best


def retouch_rgb(rgb: np.ndarray, faces: list[Face], preset: str = "natural") -> np.ndarray:
    return to_pixels(retouch(to_tensor(rgb), faces, RetouchSettings.preset(preset)))


def measure(name: str, rgb: np.ndarray, finder, layout: str = "A", preset: str = "natural") -> Figures | None:
    """Plant spots on the main face of `rgb`, retouch, and return the four figures; None without a meshed face."""
    # 1. Find the faces on the clean frame; the largest with a mesh is the subject.
    clean_faces = [face for face in finder.find(rgb) if face.landmarks is not None]
    if not clean_faces:
        return None
    subject = clean_faces[0]

    # 2. Plant spots and find the faces again on the spotted frame, as a pipeline run on it would.
    planted, spots = plant_spots(rgb, subject, layout)
    if not spots:
        return None
    spotted_faces = [face for face in finder.find(planted) if face.landmarks is not None]
    spotted_subject = matching_face(spotted_faces, subject)
    if spotted_subject is None:
        return None
    started = time.perf_counter()
    retouched = retouch_rgb(planted, spotted_faces, preset)
    seconds = time.perf_counter() - started

    # 3. Spots, texture, outside change.
    reduction = 1.0 - spot_contrasts(retouched, spots) / np.maximum(spot_contrasts(planted, spots), 1e-6)
    texture = texture_kept(planted, retouched, subject, spots, layout)
    outside = outside_change(planted, retouched, spotted_faces)

    # 4. Landmarks re-detected after retouching, against the clean frame's and the spotted frame's.
    #    The spots alone move the detected face (its box, then the mesh), so the shift from the
    #    spotted frame cannot fall much below the spots' own shift.
    notes = []
    after = matching_face(finder.find(retouched), subject)
    clean_after = matching_face(finder.find(retouch_rgb(rgb, clean_faces, preset)), subject)
    if after is None or clean_after is None:
        notes.append("face lost after retouch")
        shift = from_spotted = 100.0
    else:
        shift = max(landmark_shift(subject, after), landmark_shift(subject, clean_after))
        from_spotted = landmark_shift(spotted_subject, after)
    return Figures(
        name, subject.eye_distance, reduction, texture, outside, shift, from_spotted,
        landmark_shift(subject, spotted_subject), seconds, spots, notes,
    )


# ---------------------------------------------------------------- test portraits


def load_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def enlarged_frame(rgb: np.ndarray, size: tuple[int, int] = (6000, 4000)) -> np.ndarray:
    """Enlarge a portrait to the frame's height (cubic) and centre it on a grey canvas of `size` (width, height)."""
    width, height = size
    scale = height / rgb.shape[0]
    enlarged = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)[:, :width]
    frame = np.full((height, width, 3), 128, dtype=np.uint8)
    left = (width - enlarged.shape[1]) // 2
    frame[:, left : left + enlarged.shape[1]] = enlarged
    return frame


def scaled(rgb: np.ndarray, factor: float) -> np.ndarray:
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=interpolation)


def darkened(rgb: np.ndarray, face: Face, target_lightness: float = 35.0) -> np.ndarray:
    """Scale the frame's CIE L* so the face's cheeks and forehead sit at `target_lightness`, hue kept."""
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    samples = []
    for point in (50, 280, 205, 425, 151):
        x, y = face.landmarks[point, :2].astype(int)
        reach = max(2, int(0.05 * face.eye_distance))
        samples.append(lab[y - reach : y + reach, x - reach : x + reach, 0].ravel())
    lightness = float(np.median(np.concatenate(samples)))
    lab[..., 0] *= target_lightness / lightness
    rgb_out = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return np.clip(np.round(rgb_out * 255), 0, 255).astype(np.uint8)


SHARED_PORTRAITS = (
    "biden2.jpg", "biden.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg", "obama-1080p.jpg", "obama-240p.jpg",
    "obama_partial_face.jpg", "obama_partial_face2.jpg", "obama_and_biden.jpg", "two_people.jpg", "32bit.png",
)


def sweep_cases(photos: Path | None, finder):
    """Yield (name, rgb) for every portrait of the sweep: the shared photos, astronaut, and derived frames."""
    from skimage import data

    astronaut = data.astronaut()
    yield "astronaut", astronaut
    yield "astronaut x2", scaled(astronaut, 2.0)
    yield "astronaut dark", darkened(astronaut, finder.find(astronaut)[0])
    if photos is None or not photos.is_dir():
        return
    for name in SHARED_PORTRAITS:
        path = photos / name
        if path.is_file():
            yield name, load_rgb(path)
    biden2 = load_rgb(photos / "biden2.jpg")
    obama = load_rgb(photos / "obama.jpg")
    yield "biden2 6000x4000", enlarged_frame(biden2)
    yield "biden2 x2", scaled(biden2, 2.0)
    yield "biden2 x0.5", scaled(biden2, 0.5)
    yield "obama x2", scaled(obama, 2.0)
    yield "obama x0.5", scaled(obama, 0.5)
    yield "biden2 dark", darkened(biden2, finder.find(biden2)[0])
    yield "obama dark", darkened(obama, finder.find(obama)[0])


def main(argv: list[str]) -> int:
    from pipeline.faces import shared_finder

    photos = Path(argv[1]) if len(argv) > 1 else REPO_ROOT.parent / "shared" / "photos"
    only = {name for name in argv[2:] if name != "-v"}
    verbose = "-v" in argv
    finder = shared_finder()
    print(TABLE_HEADER)
    failed = 0
    for name, rgb in sweep_cases(photos, finder):
        if only and name not in only:
            continue
        for layout in SPOT_LAYOUTS:
            figures = measure(f"{name} [{layout}]", rgb, finder, layout)
            if figures is None:
                print(f"{name} [{layout}]: no face with a mesh")
                continue
            failed += bool(figures.failures())
            print(figures.row(), " ".join(figures.notes), flush=True)
            if verbose:
                print("    per spot:", " ".join(
                    f"{spot.point}/r{spot.radius}:{value:.2f}" for spot, value in zip(figures.spots, figures.contrast_reduction)
                ))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
