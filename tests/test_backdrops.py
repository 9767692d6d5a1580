"""Backdrop names, rendering and compositing, on the astronaut portrait and pictures written by the tests."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pipeline.backdrops import (
    BACKDROPS,
    BackdropSpec,
    composite,
    light_wrap_basis,
    parse_backdrop,
    render_backdrop,
    replace_backdrop,
)
from pipeline.device import to_tensor
from pipeline.errors import HeadshotError
from pipeline.faces import shared_finder
from pipeline.i18n import gettext_for
from pipeline.matte import person_matte


@pytest.fixture(scope="module")
def astronaut(astronaut_rgb):
    image = to_tensor(astronaut_rgb)
    faces = shared_finder().find(astronaut_rgb)
    return image, faces, person_matte(image, faces)


def _disc_scene(size: int = 200):
    """A red disc (the subject) on a blue-grey backdrop, with its exact matte."""
    rows, columns = np.mgrid[0:size, 0:size]
    inside = ((rows - size / 2) ** 2 + (columns - size / 2) ** 2 <= (size / 4) ** 2).astype(np.float32)
    image = np.empty((3, size, size), np.float32)
    image[:] = np.array([0.3, 0.4, 0.6], np.float32)[:, None, None]
    image[:, inside == 1] = np.array([0.9, 0.1, 0.1], np.float32)[:, None]
    return torch.from_numpy(image), torch.from_numpy(inside)[None]


def test_parse_plain_names():
    for name in ("original", "studio-grey", "white", "black", "blur"):
        assert parse_backdrop(name).kind == name
    assert parse_backdrop(" White ").kind == "white"


def test_parse_brand_colour():
    spec = parse_backdrop("color:#1F4E79")
    assert spec.kind == "color"
    assert spec.color == pytest.approx((0x1F / 255, 0x4E / 255, 0x79 / 255))
    assert spec.name == "color:#1F4E79"
    assert parse_backdrop("color:#fff").color == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("name", ["color:#12345", "color:#GGGGGG", "color:", "sky", "white:1"])
def test_parse_rejects_invalid_names(name):
    with pytest.raises(HeadshotError) as raised:
        parse_backdrop(name)
    assert raised.value.code == "invalid_option"
    assert name.strip() in raised.value.user_message("en")


def test_parse_rejects_file_that_is_not_an_image(tmp_path):
    text_file = tmp_path / "notes.png"
    text_file.write_text("not a picture")
    with pytest.raises(HeadshotError) as raised:
        parse_backdrop(f"image:{text_file}")
    assert raised.value.code == "not_an_image"
    assert str(text_file) in raised.value.user_message("en")


def test_parse_names_missing_backdrop_picture(tmp_path):
    missing = tmp_path / "wall.png"
    with pytest.raises(HeadshotError) as raised:
        parse_backdrop(f"image:{missing}")
    assert raised.value.code == "file_not_found"
    assert f"{missing} was not found" in raised.value.user_message("en")


def test_white_and_black_are_exact(astronaut):
    image, faces, matte = astronaut
    white = render_backdrop(BackdropSpec("white"), image, matte, faces, color_in_profile=lambda rgb: (0.9, 0.9, 0.9))
    black = render_backdrop(BackdropSpec("black"), image, matte, faces)
    assert white.shape == (3, 512, 512)
    assert bool((white == 1.0).all())
    assert bool((black == 0.0).all())


def test_brand_colour_goes_through_profile(astronaut):
    image, faces, matte = astronaut
    seen = []

    def into_profile(rgb):
        seen.append(rgb)
        return tuple(channel * 0.5 for channel in rgb)

    backdrop = render_backdrop(parse_backdrop("color:#FF8000"), image, matte, faces, color_in_profile=into_profile)
    assert seen == [pytest.approx((1.0, 128 / 255, 0.0))]
    assert torch.allclose(backdrop[:, 10, 10], torch.tensor([0.5, 64 / 255, 0.0]))
    plain = render_backdrop(parse_backdrop("color:#FF8000"), image, matte, faces)
    assert torch.allclose(plain[:, 300, 20], torch.tensor([1.0, 128 / 255, 0.0]))


def test_studio_grey_lit_behind_head(astronaut):
    image, faces, matte = astronaut
    backdrop = render_backdrop(BackdropSpec("studio-grey"), image, matte, faces)
    right_eye, left_eye = faces[0].eye_centers
    head_x, head_y = int((right_eye[0] + left_eye[0]) / 2), int(right_eye[1] - 0.3 * faces[0].box[3])
    behind_head = float(backdrop[:, head_y - 5 : head_y + 5, head_x - 5 : head_x + 5].mean())
    corner = float(backdrop[:, -10:, -10:].mean())
    assert behind_head > corner + 0.1
    assert torch.allclose(backdrop[0], backdrop[1], atol=1e-6)  # neutral grey without a profile
    again = render_backdrop(BackdropSpec("studio-grey"), image, matte, faces)
    assert torch.equal(backdrop, again)


def test_blur_fills_subject_hole_from_backdrop():
    image, matte = _disc_scene()
    blurred = render_backdrop(BackdropSpec("blur"), image, matte, faces=[])
    center = blurred[:, 95:105, 95:105].mean(dim=(1, 2))
    assert torch.allclose(center, torch.tensor([0.3, 0.4, 0.6]), atol=0.03)


def test_custom_picture_is_cover_fitted(tmp_path, astronaut):
    image, faces, matte = astronaut
    picture = np.zeros((100, 300, 3), np.uint16)
    picture[:, :100] = (65535, 0, 0)  # blue in BGR, left third
    picture[:, 100:200] = (0, 65535, 0)
    picture[:, 200:] = (0, 0, 65535)  # red, right third
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), picture)

    backdrop = render_backdrop(parse_backdrop(f"image:{path}"), image, matte, faces)

    assert backdrop.shape == (3, 512, 512)
    # A 3:1 picture on a square frame keeps only its middle third: all green.
    assert torch.allclose(backdrop[:, 256, 256], torch.tensor([0.0, 1.0, 0.0]), atol=1e-3)
    assert torch.allclose(backdrop[:, 5, 5], torch.tensor([0.0, 1.0, 0.0]), atol=1e-3)


def test_original_backdrop_is_identity(astronaut):
    image, faces, matte = astronaut
    spec = parse_backdrop("original")
    assert torch.equal(replace_backdrop(spec, image, matte, faces), image)
    backdrop = render_backdrop(spec, image, matte, faces)
    assert torch.equal(composite(image * 0.5, matte, backdrop), image)


def test_composite_keeps_backdrop_where_matte_is_zero(astronaut):
    image, faces, matte = astronaut
    white = replace_backdrop(BackdropSpec("white"), image, matte, faces)
    outside = (matte == 0).expand(3, -1, -1)
    assert bool((white[outside] == 1.0).all())
    solid = (matte == 1).expand(3, -1, -1)
    assert torch.allclose(white[solid].mean(), image[solid].mean(), atol=0.02)


def test_light_wrap_touches_only_subject_edge():
    image, matte = _disc_scene()
    backdrop = torch.ones((3, 200, 200))
    wrapped = composite(image, matte, backdrop, light_wrap=0.3)
    plain = composite(image, matte, backdrop, light_wrap=0.0)

    changed = (wrapped - plain).abs().amax(dim=0) > 1e-4
    assert bool(changed.any())
    assert bool((matte[0][changed] > 0).all())
    assert torch.equal(wrapped[:, 100, 100], plain[:, 100, 100])  # far inside the disc
    assert float(wrapped[1, 100, 51]) > float(plain[1, 100, 51])  # the edge picks up the white


def test_backdrop_names_have_dutch_translations():
    dutch = gettext_for("nl")
    for display_name in BACKDROPS.values():
        assert dutch(display_name) != display_name, display_name
    assert dutch(BACKDROPS["studio-grey"]) == "Studiogrijs"


def test_brand_and_picture_labels_translated():
    from pipeline.styles import display_name

    assert display_name("backdrop", "color:#1f4e79", "en") == "Brand colour #1F4E79"
    assert display_name("backdrop", "color:#1f4e79", "nl") == "Huisstijlkleur #1F4E79"
    assert display_name("backdrop", "image:/photos/set/wall.jpg", "nl") == "Eigen achtergrondfoto wall.jpg"
    assert display_name("backdrop", "unknown-thing", "nl") == "unknown-thing"


@pytest.mark.parametrize("backdrop_name", ["color:#1F4E79", "studio-grey"])
def test_composite_with_a_shared_basis_equals_composite_alone(backdrop_name):
    # A frame larger than the light wrap's working size, so the wrap runs box by box along the edge.
    image, matte = _disc_scene(1200)
    matte = torch.from_numpy(cv2.GaussianBlur(matte[0].numpy(), (0, 0), 3))[None]
    backdrop = render_backdrop(parse_backdrop(backdrop_name), image, matte, faces=[])
    basis = light_wrap_basis(matte)

    alone = composite(image, matte, backdrop.clone())
    shared = composite(image, matte, backdrop, out=backdrop, basis=basis)

    assert len(basis.boxes) > 1
    assert torch.allclose(alone, shared, atol=1e-6)
    assert float((alone - image).abs().amax()) > 0.1  # the backdrop did change


def test_plain_colour_backdrop_composites_like_a_filled_one():
    image, matte = _disc_scene(1200)
    matte = torch.from_numpy(cv2.GaussianBlur(matte[0].numpy(), (0, 0), 3))[None]
    view = render_backdrop(parse_backdrop("color:#1F4E79"), image, matte, faces=[])
    filled = view.clone()

    from_view = composite(image, matte, view, out=view)
    from_filled = composite(image, matte, filled)

    assert view.stride()[1:] == (0, 0)
    assert torch.allclose(view[:, 0, 0], torch.tensor([0x1F, 0x4E, 0x79]) / 255)  # left as it was
    assert torch.allclose(from_view, from_filled, atol=1e-5)
    edge = (matte[0] > 0.1) & (matte[0] < 0.9)
    assert float((from_view - image * matte - filled * (1 - matte))[:, edge].abs().amax()) > 0.005  # the wrap is there
