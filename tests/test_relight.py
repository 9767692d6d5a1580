"""Lighting styles on real portraits: the key side's cheek brightens, soft studio evens the cheeks, geometry and
backdrop stay as shot."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pipeline.device import current_device, to_pixels, to_tensor
from pipeline.errors import HeadshotError
from pipeline.faces import Face, shared_finder
from pipeline.i18n import gettext_for
from pipeline.matte import person_matte
from pipeline.relight import LIGHTS, parse_light, relight
from pipeline.relight_geometry import MESH_POINTS, head_frame, head_maps, mesh_triangles, to_working_grid

# Cheek apples: the subject's right cheek is on the image's left.
IMAGE_LEFT_CHEEK = (50, 101, 118, 205, 187)
IMAGE_RIGHT_CHEEK = (280, 330, 347, 425, 411)
SIDE_LIT = ("rembrandt-left", "rembrandt-right", "split-left", "split-right")
PORTRAITS = ("biden2.jpg", "obama.jpg", "obama-1080p.jpg")


# ---------------------------------------------------------------- helpers


def cheek_luma(rgb: np.ndarray, landmarks: np.ndarray, points) -> float:
    """Return the mean Rec. 709 luma of the encoded values inside the hull of some mesh points."""
    mask = np.zeros(rgb.shape[:2], dtype=np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks[list(points), :2]).astype(np.int32)), 1)
    luma = rgb.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722]) / 255
    return float(luma[mask > 0].mean())


def cheek_ratio(rgb: np.ndarray, landmarks: np.ndarray) -> float:
    """Return the image-left cheek's luma over the image-right cheek's."""
    return cheek_luma(rgb, landmarks, IMAGE_LEFT_CHEEK) / cheek_luma(rgb, landmarks, IMAGE_RIGHT_CHEEK)


def landmark_shift(before: Face, after_rgb: np.ndarray) -> float:
    """Return the mean landmark movement after re-detection, in percent of the eye distance."""
    found = shared_finder().find(after_rgb)
    assert found and found[0].landmarks is not None, "no face mesh found after relighting"
    movement = np.linalg.norm(found[0].landmarks[:, :2] - before.landmarks[:, :2], axis=1)
    return float(movement.mean() / before.eye_distance * 100)


def darken_image_left(rgb: np.ndarray, face: Face) -> np.ndarray:
    """Darken the image's left side in a gradient: from the nose outwards over 0.6 face widths, down to 40 %."""
    nose_x = face.landmarks[1, 0]
    face_width = np.ptp(face.landmarks[:, 0])
    factor = np.clip(1 - 0.6 * (nose_x - np.arange(rgb.shape[1])) / (0.6 * face_width), 0.4, 1.0)
    return np.round(rgb * factor[None, :, None]).astype(np.uint8)


def relit_pixels(rgb: np.ndarray, faces, light: str, matte: torch.Tensor | None = None) -> np.ndarray:
    return to_pixels(relight(to_tensor(rgb), faces, light, matte))


@pytest.fixture(scope="module")
def astronaut(astronaut_rgb):
    faces = shared_finder().find(astronaut_rgb)
    assert faces and faces[0].landmarks is not None
    return astronaut_rgb, faces


@pytest.fixture(scope="module")
def astronaut_matte(astronaut):
    rgb, faces = astronaut
    return person_matte(to_tensor(rgb), faces)


@pytest.fixture(scope="module", params=PORTRAITS)
def portrait(request, shared_photos):
    path = shared_photos / request.param
    if not path.exists():
        pytest.skip(f"{request.param} is not among the test photos")
    rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    faces = shared_finder().find(rgb)
    assert faces and faces[0].landmarks is not None
    return rgb, faces, person_matte(to_tensor(rgb), faces)


# ---------------------------------------------------------------- names and options


def test_lights_offer_every_style():
    assert set(LIGHTS) == {
        "original", "natural", "soft-studio", "rembrandt-left", "rembrandt-right", "loop-left", "loop-right",
        "butterfly", "split-left", "split-right", "rim-left", "rim-right",
    }  # fmt: skip


def test_light_names_have_dutch():
    dutch = gettext_for("nl")
    for name, english in LIGHTS.items():
        assert dutch(english) != english, f"{name} has no Dutch display name"


def test_parse_light_normalises_case():
    assert parse_light(" Rembrandt-Left ") == "rembrandt-left"


def test_parse_light_rejects_unknown():
    with pytest.raises(HeadshotError) as raised:
        parse_light("candle")
    assert raised.value.code == "invalid_option"
    assert raised.value.params["option"] == "--light"
    assert "rim-right" in raised.value.user_message("en")


def test_relight_rejects_strength_out_of_range(astronaut):
    rgb, faces = astronaut
    with pytest.raises(ValueError):
        relight(to_tensor(rgb), faces, "butterfly", strength=1.5)


# ---------------------------------------------------------------- geometry


def test_mesh_triangles_cover_mesh():
    triangles = mesh_triangles()
    assert len(triangles) > 800
    assert triangles.max() < MESH_POINTS
    assert len(np.unique(triangles)) == MESH_POINTS


def test_normal_map_follows_face(astronaut):
    rgb, faces = astronaut
    landmarks = faces[0].landmarks
    frame = head_frame(landmarks, rgb.shape[:2])
    maps = head_maps(landmarks, frame, None, current_device())
    points = to_working_grid(landmarks, frame)

    def normal_at(index: int) -> np.ndarray:
        x, y = np.round(points[index, :2]).astype(int)
        return maps.normals[:, y, x].cpu().numpy()

    assert normal_at(234)[0] < -0.3, "the image-left face edge should face image left"
    assert normal_at(454)[0] > 0.3, "the image-right face edge should face image right"
    assert normal_at(1)[2] > 0.8, "the nose tip should face the camera"
    assert normal_at(152)[1] < normal_at(151)[1], "the chin should face further down than the forehead"


# ---------------------------------------------------------------- what stays as shot


@pytest.mark.parametrize("light", ["original", "natural"])
def test_unchanged_lights_bit_identical(astronaut, light):
    rgb, faces = astronaut
    image = to_tensor(rgb)
    assert torch.equal(relight(image, faces, light), image)


def test_zero_strength_bit_identical(astronaut):
    rgb, faces = astronaut
    image = to_tensor(rgb)
    assert torch.equal(relight(image, faces, "split-left", strength=0.0), image)


def test_face_without_mesh_left_as_shot(astronaut):
    rgb, faces = astronaut
    image = to_tensor(rgb)
    without_mesh = Face(box=faces[0].box, score=faces[0].score, keypoints=faces[0].keypoints)
    assert torch.equal(relight(image, [without_mesh], "rembrandt-left"), image)


def test_backdrop_unchanged_with_matte(astronaut, astronaut_matte):
    rgb, faces = astronaut
    image = to_tensor(rgb)
    matte = astronaut_matte
    result = relight(image, faces, "rim-left", matte)
    backdrop = (matte[0] == 0).expand_as(image)
    assert bool(backdrop.any())
    assert torch.equal(result[backdrop], image[backdrop])
    assert not torch.equal(result, image)


def test_without_matte_only_face_changes(astronaut):
    rgb, faces = astronaut
    image = to_tensor(rgb)
    result = relight(image, faces, "split-right")
    changed = (result != image).any(dim=0).cpu().numpy()
    x0, y0 = faces[0].landmarks[:, :2].min(axis=0)
    x1, y1 = faces[0].landmarks[:, :2].max(axis=0)
    margin = 0.5 * (x1 - x0)
    near_face = np.zeros_like(changed)
    near_face[int(y0 - margin) : int(y1 + margin), int(x0 - margin) : int(x1 + margin)] = True
    assert changed.any()
    assert not (changed & ~near_face).any()


def test_colour_ratios_kept(astronaut, astronaut_matte):
    rgb, faces = astronaut
    image = to_tensor(rgb)
    result = relight(image, faces, "loop-right", astronaut_matte)
    unclipped = (image.min(dim=0).values > 0.1) & (image.max(dim=0).values < 0.8) & (result != image).any(dim=0)
    gains = result[:, unclipped] / image[:, unclipped]
    assert float((gains.max(dim=0).values - gains.min(dim=0).values).max()) < 1e-4


def test_landmarks_stay_on_astronaut(astronaut, astronaut_matte):
    rgb, faces = astronaut
    for light in ("rembrandt-left", "split-right", "butterfly"):
        shift = landmark_shift(faces[0], relit_pixels(rgb, faces, light, astronaut_matte))
        assert shift < 1.5, f"{light} moved the landmarks by {shift:.2f} % of the eye distance"


def test_two_faces_both_relit(astronaut):
    rgb, faces = astronaut
    pair = np.concatenate([rgb, rgb[:, ::-1]], axis=1).copy()
    found = shared_finder().find(pair)
    assert len(found) == 2
    result = relit_pixels(pair, found, "split-left")
    for face in found:
        assert cheek_ratio(result, face.landmarks) > 1.3 * cheek_ratio(pair, face.landmarks)


# ---------------------------------------------------------------- the look of each style


@pytest.mark.parametrize("light", SIDE_LIT)
def test_key_side_cheek_brighter_on_astronaut(astronaut, astronaut_matte, light):
    rgb, faces = astronaut
    landmarks = faces[0].landmarks
    ratio = cheek_ratio(relit_pixels(rgb, faces, light, astronaut_matte), landmarks)
    as_shot = cheek_ratio(rgb, landmarks)
    if light.endswith("-left"):
        assert ratio >= 1.3
        assert ratio > as_shot
    else:
        assert 1 / ratio >= 1.3
        assert 1 / ratio > 1 / as_shot


def test_key_side_cheek_brighter_without_matte(astronaut):
    rgb, faces = astronaut
    ratio = cheek_ratio(relit_pixels(rgb, faces, "rembrandt-right"), faces[0].landmarks)
    assert 1 / ratio >= 1.3


def test_soft_studio_evens_darkened_half(astronaut, astronaut_matte):
    rgb, faces = astronaut
    darkened = darken_image_left(rgb, faces[0])
    landmarks = faces[0].landmarks
    assert cheek_ratio(darkened, landmarks) < 0.85, "the darkening should have unbalanced the cheeks"
    ratio = cheek_ratio(relit_pixels(darkened, faces, "soft-studio", astronaut_matte), landmarks)
    assert 1 / 1.1 <= ratio <= 1.1


def test_styles_on_portraits(portrait):
    rgb, faces, matte = portrait
    landmarks = faces[0].landmarks
    as_shot = cheek_ratio(rgb, landmarks)

    left_lit = relit_pixels(rgb, faces, "rembrandt-left", matte)
    assert cheek_ratio(left_lit, landmarks) >= max(1.3, as_shot)
    assert landmark_shift(faces[0], left_lit) < 1.5

    right_lit = relit_pixels(rgb, faces, "split-right", matte)
    assert 1 / cheek_ratio(right_lit, landmarks) >= max(1.3, 1 / as_shot)
    assert landmark_shift(faces[0], right_lit) < 1.5

    darkened = darken_image_left(rgb, faces[0])
    evened = relit_pixels(darkened, faces, "soft-studio", matte)
    assert 1 / 1.1 <= cheek_ratio(evened, landmarks) <= 1.1


def test_rim_light_outlines_the_subject_on_its_side(astronaut, astronaut_matte):
    # The subject's outline facing camera right brightens under rim-right; the outline facing left does not.
    rgb, faces = astronaut
    matte = astronaut_matte[0].numpy()
    solid = (matte > 0.9).astype(np.uint8)
    width = int(0.03 * (faces[0].landmarks[:, 0].max() - faces[0].landmarks[:, 0].min())) + 1
    shifted_right = np.zeros_like(solid)
    shifted_right[:, :-width] = solid[:, width:]
    shifted_left = np.zeros_like(solid)
    shifted_left[:, width:] = solid[:, :-width]
    # Near the head: within the face's crop reach, where the relight acts.
    x, y, box_width, box_height = faces[0].box
    near = np.zeros_like(solid, dtype=bool)
    near[max(0, int(y - box_height)) : int(y + 2 * box_height), max(0, int(x - box_width)) : int(x + 2 * box_width)] = True
    right_edge = (solid == 1) & (shifted_right == 0) & near
    left_edge = (solid == 1) & (shifted_left == 0) & near
    assert right_edge.sum() > 200
    assert left_edge.sum() > 200

    luma = np.array([0.2126, 0.7152, 0.0722])
    before = rgb.astype(np.float64) @ luma
    after = relit_pixels(rgb, faces, "rim-right", astronaut_matte).astype(np.float64) @ luma
    gain_right = float((after[right_edge] - before[right_edge]).mean())
    gain_left = float((after[left_edge] - before[left_edge]).mean())
    assert gain_right > 50
    assert gain_right > gain_left + 20
