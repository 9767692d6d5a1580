"""Crop framing measured on the cropped output itself: faces found again, eyes and head placed by the rules."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from pipeline.crops import CROPS, CropPlan, apply_crop, plan_crop
from pipeline.device import to_pixels, to_tensor
from pipeline.errors import HeadshotError
from pipeline.faces import CHIN, shared_finder
from pipeline.matte import person_matte


def _load(shared_photos, name: str, long_side: int | None = None) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.imread(str(shared_photos / name)), cv2.COLOR_BGR2RGB)
    if long_side is not None and max(rgb.shape[:2]) > long_side:
        scale = long_side / max(rgb.shape[:2])
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return rgb


def _crop_and_find(rgb: np.ndarray, name: str, with_matte: bool = True):
    """Plan and apply crop `name`; return the plan, the output pixels and the face found again in it."""
    image = to_tensor(rgb)
    face = shared_finder().find(rgb)[0]
    matte = person_matte(image, [face]) if with_matte else None
    plan = plan_crop(name, face, rgb.shape[1], rgb.shape[0], matte)
    output = to_pixels(apply_crop(image, plan))
    found = shared_finder().find(output)
    assert found and found[0].landmarks is not None, f"no face in the {name} crop"
    return plan, output, found[0]


def _eye_line(face) -> tuple[float, float]:
    """Return the eye line's height (pixels) and its angle (degrees) from horizontal."""
    right_eye, left_eye = face.eye_centers
    angle = math.degrees(math.atan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0]))
    return float((right_eye[1] + left_eye[1]) / 2), angle


def _face_center_x(face) -> float:
    x_values = face.landmarks[:, 0]
    return float((x_values.min() + x_values.max()) / 2)


@pytest.mark.parametrize("photo", ["biden2.jpg", "obama.jpg"])
def test_square_places_eyes_and_centres_face(shared_photos, photo):
    rgb = _load(shared_photos, photo, long_side=900)
    plan, output, face = _crop_and_find(rgb, "square")
    height, width = output.shape[:2]
    eye_height, _ = _eye_line(face)
    eyes_from_top = eye_height / height
    centre_offset = _face_center_x(face) / width - 0.5
    print(f"{photo} square {width}×{height}: eyes {eyes_from_top:.1%} from top, face centre off by {centre_offset:+.1%}")

    assert width == height >= 400
    assert 0.35 <= eyes_from_top <= 0.45
    assert abs(centre_offset) <= 0.05


def test_square_on_astronaut(astronaut_rgb):
    plan, output, face = _crop_and_find(astronaut_rgb, "square")
    eye_height, angle = _eye_line(face)
    print(f"astronaut square: eyes {eye_height / output.shape[0]:.1%} from top, eye line {angle:+.2f}°")
    assert 0.35 <= eye_height / output.shape[0] <= 0.45
    assert abs(_face_center_x(face) / output.shape[1] - 0.5) <= 0.05
    assert abs(angle) <= 1.0


def test_roll_correction_levels_eyes(shared_photos):
    rgb = _load(shared_photos, "biden2.jpg", long_side=900)
    height, width = rgb.shape[:2]
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), 8, 1.0)
    tilted = cv2.warpAffine(rgb, rotation, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    _, tilted_angle = _eye_line(shared_finder().find(tilted)[0])

    for name in ("square", "portrait", "passport"):
        plan, output, face = _crop_and_find(tilted, name)
        _, angle = _eye_line(face)
        print(f"tilted frame: eye line {tilted_angle:+.2f}°, after the {name} crop {angle:+.2f}°")
        assert abs(plan.angle_degrees - tilted_angle) < 1.5
        assert abs(angle) <= 1.0, name


@pytest.mark.parametrize("photo", ["biden2.jpg", "obama.jpg"])
def test_passport_chin_to_crown(shared_photos, photo):
    rgb = _load(shared_photos, photo, long_side=1200)
    plan, output, face = _crop_and_find(rgb, "passport")
    assert (plan.output_width, plan.output_height) == (827, 1063)

    # The crown measured on the output: the top of a fresh matte straight above the eyes.
    right_eye, left_eye = face.eye_centers
    eye_x, eye_y = int((right_eye[0] + left_eye[0]) / 2), int((right_eye[1] + left_eye[1]) / 2)
    matte = person_matte(to_tensor(output), [face])[0].numpy()
    column = matte[:eye_y, eye_x - 5 : eye_x + 6].min(axis=1)
    background_rows = np.flatnonzero(column < 0.5)
    crown = int(background_rows.max()) + 1 if len(background_rows) else 0
    chin = float(face.landmarks[CHIN, 1])
    head_fraction = (chin - crown) / output.shape[0]
    print(f"{photo} passport: chin to crown {head_fraction:.1%} of the height (chin {chin:.0f}, crown {crown})")
    assert 0.70 <= head_fraction <= 0.80


def test_us_passport_head_size(shared_photos):
    rgb = _load(shared_photos, "biden2.jpg", long_side=900)
    plan, output, face = _crop_and_find(rgb, "us-passport")
    assert output.shape[:2] == (600, 600)
    right_eye, left_eye = face.eye_centers
    eye_x = int((right_eye[0] + left_eye[0]) / 2)
    matte = person_matte(to_tensor(output), [face])[0].numpy()
    crown = int(np.argmax(matte[:, eye_x] > 0.5))
    head_fraction = (float(face.landmarks[CHIN, 1]) - crown) / 600
    print(f"us-passport: head {head_fraction:.1%} of the height")
    assert 0.50 <= head_fraction <= 0.69


def test_crop_past_edge_is_filled(astronaut_rgb):
    # Cut the frame just above the hair, so any headroom must come from past the edge.
    face = shared_finder().find(astronaut_rgb)[0]
    top = int(face.box[1])
    rgb = np.ascontiguousarray(astronaut_rgb[top:])
    face = shared_finder().find(rgb)[0]
    image = to_tensor(rgb)

    plan = plan_crop("portrait", face, rgb.shape[1], rgb.shape[0])
    assert plan.reaches_past_edge

    extended = apply_crop(image, plan)
    assert not bool(torch.isnan(extended).any())
    top_rows = extended[:, :5]
    assert float(top_rows.std()) < 0.2  # a smooth continuation, not mirrored detail

    fill = torch.tensor([0.25, 0.5, 0.75]).view(3, 1, 1)
    filled = apply_crop(image, plan, fill=fill)
    assert torch.allclose(filled[:, 0, plan.output_width // 2], fill[:, 0, 0], atol=1e-6)


def test_crop_inside_frame_reports_no_edge(shared_photos):
    rgb = _load(shared_photos, "obama3.jpg", long_side=1400)
    face = shared_finder().find(rgb)[0]
    plan = plan_crop("square", face, rgb.shape[1], rgb.shape[0])
    assert not plan.reaches_past_edge
    assert plan.output_width == round(plan.height)  # the source's resolution, not enlarged


def test_small_source_is_enlarged_to_minimum(shared_photos):
    rgb = _load(shared_photos, "obama-240p.jpg")
    face = shared_finder().find(rgb)[0]
    plan = plan_crop("square", face, rgb.shape[1], rgb.shape[0])
    assert plan.output_width == plan.output_height == 400
    assert apply_crop(to_tensor(rgb), plan).shape == (3, 400, 400)


def test_aspect_ratios_are_exact(astronaut_rgb):
    face = shared_finder().find(astronaut_rgb)[0]
    expected = {"square": 1.0, "portrait": 4 / 5, "classic": 2 / 3, "banner": 16 / 9}
    for name, aspect in expected.items():
        plan = plan_crop(name, face, 512, 512)
        assert plan.output_width / plan.output_height == pytest.approx(aspect), name
        assert plan.width / plan.height == pytest.approx(aspect), name


def test_original_crop_is_identity(astronaut_rgb):
    image = to_tensor(astronaut_rgb)
    face = shared_finder().find(astronaut_rgb)[0]
    plan = plan_crop("original", face, 512, 512)
    assert plan == CropPlan("original", 256.0, 256.0, 0.0, 512.0, 512.0, 512, 512, False)
    assert torch.equal(apply_crop(image, plan), image)


def test_shrinking_averages_detail():
    # A one-pixel checkerboard shrunk 4× must come out mid-grey, not aliased stripes.
    checker = ((np.indices((800, 800)).sum(axis=0) % 2) * 1.0).astype(np.float32)
    image = torch.from_numpy(np.stack([checker] * 3))
    plan = CropPlan("square", 400.0, 400.0, 3.0, 600.0, 600.0, 150, 150, False)
    output = apply_crop(image, plan)
    assert abs(float(output.mean()) - 0.5) < 0.02
    assert float(output.std()) < 0.05


def test_unknown_crop_is_rejected(astronaut_rgb):
    face = shared_finder().find(astronaut_rgb)[0]
    with pytest.raises(HeadshotError) as raised:
        plan_crop("panorama", face, 512, 512)
    assert raised.value.code == "invalid_option"


def test_crop_names_have_dutch_translations():
    from pipeline.i18n import gettext_for

    dutch = gettext_for("nl")
    for display_name in CROPS.values():
        assert dutch(display_name) != display_name, display_name


def test_opencv_and_torch_resampling_agree(astronaut_rgb):
    from pipeline.crops import _resample_opencv, _resample_torch

    image = to_tensor(astronaut_rgb)
    angle = math.radians(6.0)
    for block, step in ((1, 0.8), (3, 3.2)):
        affine = np.array([[step * math.cos(angle), -step * math.sin(angle), 60.0],
                           [step * math.sin(angle), step * math.cos(angle), 40.0]]) / block
        size = (120, 100)
        by_opencv = _resample_opencv(image, block, affine, size)
        by_torch = _resample_torch(image, block, affine, size)
        assert by_opencv.shape == by_torch.shape == (3, 120, 100)
        assert float((by_opencv - by_torch).abs().mean()) < 0.01, block


def test_upright_crop_resizes_as_the_rotating_path_samples(astronaut_rgb):
    from pipeline.crops import _resample_opencv

    # The same upright crop by the window resize and by the general resampling, enlarging and shrinking.
    image = to_tensor(astronaut_rgb)
    for width, output, block in ((180.0, 240, 1), (300.0, 240, 1), (420.0, 100, 4)):
        plan = CropPlan("square", 250.0, 240.0, 0.0, width, width, output, output, False)
        step = width / output
        affine = np.array([[step, 0.0, 250.0 - width / 2 + 0.5 * step], [0.0, step, 240.0 - width / 2 + 0.5 * step]])
        general = _resample_opencv(image, block, affine / block, (output, output)).clamp(0, 1)
        resized = apply_crop(image, plan)
        assert resized.shape == (3, output, output)
        assert float((resized - general).abs().mean()) < (0.001 if block == 1 else 0.02), width


def test_upright_crop_at_output_size_is_a_slice(astronaut_rgb):
    image = to_tensor(astronaut_rgb)
    plan = CropPlan("square", 250.0, 240.0, 0.0, 200.0, 200.0, 200, 200, False)
    assert torch.equal(apply_crop(image, plan), image[:, 140:340, 150:350])


def _canvas_variant(rgb: np.ndarray, plan, face, matte, backdrop: str):
    """Carry the frame past its edges on a canvas around the crop, replace the backdrop and cut the crop,
    as the process stage does; return the output and each output pixel's source position (x, y)."""
    import dataclasses

    from pipeline.backdrops import composite, parse_backdrop, render_backdrop
    from pipeline.crops import _corners, extend_frame
    from pipeline.faces import Face
    from pipeline.matte import decontaminate

    height, width = rgb.shape[:2]
    corners = _corners(plan.center_x, plan.center_y, plan.width, plan.height, math.radians(plan.angle_degrees))
    left, top = min(0, math.floor(corners[:, 0].min()) - 8), min(0, math.floor(corners[:, 1].min()) - 8)
    right, bottom = max(width, math.ceil(corners[:, 0].max()) + 8), max(height, math.ceil(corners[:, 1].max()) + 8)
    window = (-left, -top, width - left, height - top)
    canvas = torch.zeros((3, bottom - top, right - left))
    canvas[:, window[1] : window[3], window[0] : window[2]] = to_tensor(rgb)
    canvas_matte = torch.zeros((1, bottom - top, right - left))
    canvas_matte[:, window[1] : window[3], window[0] : window[2]] = matte
    landmarks = face.landmarks.copy()
    landmarks[:, :2] -= (left, top)
    x, y, box_width, box_height = face.box
    canvas_face = Face((x - left, y - top, box_width, box_height), face.score, face.keypoints - (left, top), landmarks)

    image, canvas_matte = extend_frame(canvas, canvas_matte, window, [canvas_face])
    backdrop = render_backdrop(parse_backdrop(backdrop), image, canvas_matte, [canvas_face])
    composed = composite(decontaminate(image, canvas_matte), canvas_matte, backdrop)
    canvas_plan = dataclasses.replace(plan, center_x=plan.center_x - left, center_y=plan.center_y - top,
                                      reaches_past_edge=False)
    output = apply_crop(composed, canvas_plan)

    angle = math.radians(plan.angle_degrees)
    columns, rows = np.meshgrid(np.arange(plan.output_width) + 0.5, np.arange(plan.output_height) + 0.5)
    along_x = (columns / plan.output_width - 0.5) * plan.width
    along_y = (rows / plan.output_height - 0.5) * plan.height
    source_x = plan.center_x + along_x * math.cos(angle) - along_y * math.sin(angle)
    source_y = plan.center_y + along_x * math.sin(angle) + along_y * math.cos(angle)
    return output, source_x, source_y


def _tight_headshot(rgb: np.ndarray) -> np.ndarray:
    """Cut a frame like a tight studio headshot: hair close to the top, the chest cut below the collar."""
    face = shared_finder().find(rgb)[0]
    x, y, box_width, box_height = face.box
    center_x = x + box_width / 2
    top = max(0, int(y - 0.45 * box_height))
    bottom = min(rgb.shape[0], int(y + 1.9 * box_height))
    half = (bottom - top) / 2
    left, right = max(0, int(center_x - half)), min(rgb.shape[1], int(center_x + half))
    return np.ascontiguousarray(rgb[top:bottom, left:right])


@pytest.mark.parametrize("source", ["biden2", "generated"])
def test_square_of_tight_headshot_makes_up_no_body(shared_photos, astronaut_rgb, source):
    from pipeline.crops import _corners

    # A tight headshot's crops keep a little room above the hair: past the top edge at most, where the
    # picture continues as backdrop. Below and beside the frame a body would have to be made up.
    if source == "biden2":
        rgb = _load(shared_photos, "biden2.jpg", long_side=900)
    else:
        rgb = _tight_headshot(astronaut_rgb)
    face = shared_finder().find(rgb)[0]
    matte = person_matte(to_tensor(rgb), [face])
    height, width = rgb.shape[:2]
    for name in ("square", "portrait"):
        plan = plan_crop(name, face, width, height, matte)
        corners = _corners(plan.center_x, plan.center_y, plan.width, plan.height, math.radians(plan.angle_degrees))
        print(f"{source} {width}×{height}: {name} {plan.width:.0f}×{plan.height:.0f}, top {corners[:, 1].min():.1f}")
        assert corners[:, 1].max() <= height + 0.5, name
        assert corners[:, 0].min() >= -0.5, name
        assert corners[:, 0].max() <= width + 0.5, name
        assert corners[:, 1].min() >= -0.05 * plan.height, name
        crown = _crown_from_top(plan, face, matte, width, height)
        assert crown is None or crown >= 0.04 - 1e-6, name


def _crown_from_top(plan, face, matte, width: int, height: int) -> float | None:
    """Return the top of the hair below the crop's top edge, as a fraction of the crop's height; None where the
    frame cuts the head."""
    from pipeline.crops import _head_geometry, _levelled

    head = _head_geometry(face, matte, width, height)
    if head.crown_cut:
        return None
    center_y = _levelled(np.array([[plan.center_x, plan.center_y]]), head.eye_mid, head.angle)[0, 1]
    return (head.crown - (center_y - plan.height / 2)) / plan.height


def test_tight_frame_extends_with_pure_white(astronaut_rgb):
    from skimage.color import rgb2lab

    # Cut the frame just above the hair and close beside the head, so the crop must reach past the edge.
    face = shared_finder().find(astronaut_rgb)[0]
    full_matte = person_matte(to_tensor(astronaut_rgb), [face])[0].numpy()
    x, y, box_width, _ = face.box
    hair_top = int(np.flatnonzero(full_matte[:, int(x + box_width / 2)] > 0.5)[0])
    rgb = np.ascontiguousarray(astronaut_rgb[max(0, hair_top - 6) :, max(0, int(x - 0.1 * box_width)) :])
    face = shared_finder().find(rgb)[0]
    matte = person_matte(to_tensor(rgb), [face])
    plan = plan_crop("square", face, rgb.shape[1], rgb.shape[0], matte)
    assert plan.reaches_past_edge

    output, source_x, source_y = _canvas_variant(rgb, plan, face, matte, "white")
    # Past the top, and past the left edge above the chin: the extension is backdrop only.
    above_chin = float(face.landmarks[CHIN, 1]) - 0.1 * face.box[3]
    extended = (source_y < -1) | ((source_x < -1) & (source_y < above_chin))
    assert extended.sum() > 0.05 * extended.size
    lab = rgb2lab(output.permute(1, 2, 0).numpy()[extended])
    delta_e = np.linalg.norm(lab - [100, 0, 0], axis=1)
    print(f"extended area {extended.mean():.1%} of the crop, max ΔE from white {delta_e.max():.3f}")
    assert delta_e.max() <= 2.0


def test_body_continues_below_frame(shared_photos):
    from pipeline.crops import extend_frame

    rgb = _load(shared_photos, "biden2.jpg", long_side=600)[:450]  # cut across the chest
    image = to_tensor(rgb)
    face = shared_finder().find(rgb)[0]
    matte = person_matte(image, [face])
    canvas = torch.zeros((3, 600, 600))
    canvas[:, :450] = image
    canvas_matte = torch.zeros((1, 600, 600))
    canvas_matte[:, :450] = matte

    extended, extended_matte = extend_frame(canvas, canvas_matte, (0, 0, 600, 450), [face])

    assert torch.equal(extended[:, :450], image)
    body = matte[0, -1] == 1.0
    assert bool(body.any())
    assert bool((extended_matte[0, 450:, body] == 1.0).all())  # the cut body stays solid to the bottom
    # The continuation keeps the edge's colours: next to the edge nearly the last row, further out its mean.
    assert float((extended[:, 450] - image[:, -1]).abs().mean()) < 0.03
    suit = image[:, -1][:, body].mean(dim=1)
    assert torch.allclose(extended[:, -1][:, body].mean(dim=1), suit, atol=0.03)


def test_picture_box_finds_black_bars_not_dark_backdrops(astronaut_rgb):
    from pipeline.analysis_measures import picture_box

    pillarboxed = cv2.copyMakeBorder(astronaut_rgb, 0, 0, 150, 150, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    assert picture_box(pillarboxed) == (150, 0, 662, 512)
    letterboxed = cv2.copyMakeBorder(astronaut_rgb, 40, 60, 0, 0, cv2.BORDER_CONSTANT, value=(8, 8, 8))
    assert picture_box(letterboxed) == (0, 40, 512, 552)

    # A dark studio backdrop has grain, so its columns are no bars; neither is a frame that is nearly all dark.
    grain = np.random.default_rng(3).normal(12, 3, (512, 150, 3)).clip(0, 255).astype(np.uint8)
    dark_backdrop = np.concatenate([grain, astronaut_rgb], axis=1)
    assert picture_box(dark_backdrop) == (0, 0, 662, 512)
    night = np.zeros((400, 600, 3), np.uint8)
    night[180:220, 280:320] = 200
    assert picture_box(night) == (0, 0, 600, 400)


def test_banner_of_pillarboxed_frame_has_no_black_strip(tmp_path, astronaut_rgb):
    from pipeline.process import run_job
    from pipeline.request import JobRequest

    # A narrow picture: the banner is wider than it, so it must reach past the picture into the bars.
    narrow = np.ascontiguousarray(astronaut_rgb[:, 130:400])
    pillarboxed = cv2.copyMakeBorder(narrow, 0, 0, 300, 300, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    frame = tmp_path / "pillarboxed.png"
    cv2.imwrite(str(frame), cv2.cvtColor(pillarboxed, cv2.COLOR_RGB2BGR))
    request = JobRequest(frames=[str(frame)], backdrops=["original"], lights=["natural"], crops=["banner"], retouch="off")
    result = run_job(request, tmp_path / "out")

    banner = cv2.imread(str(result.variants[0].path))
    columns_brightest = banner.max(axis=(0, 2))
    assert columns_brightest.min() > 40, "a black bar column made it into the banner"
    assert result.variants[0].recipe["crop"]["reaches_past_edge"] is True
    notes = [note["code"] for note in result.report["variants"][0]["notes"]]
    assert {"black_bars", "extended_past_edge"} <= set(notes)


def test_frame_without_bars_gets_no_bar_note(tmp_path, astronaut_rgb):
    from pipeline.process import run_job
    from pipeline.request import JobRequest

    frame = tmp_path / "astronaut.png"
    cv2.imwrite(str(frame), cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR))
    request = JobRequest(frames=[str(frame)], backdrops=["white"], lights=["natural"], crops=["square"], retouch="off")
    result = run_job(request, tmp_path / "out")

    variant = result.report["variants"][0]
    assert "inside_black_bars" not in variant["recipe"]["crop"]
    assert "black_bars" not in [note["code"] for note in variant["notes"]]


@pytest.mark.parametrize("name", ["square", "portrait", "banner"])
def test_side_cut_face_crop_stays_inside(astronaut_rgb, name):
    # The frame's right edge runs through the astronaut's face: extending the frame would put half a face
    # beside a made-up backdrop, so the crop stays inside and cuts the face where the frame does.
    cut = np.ascontiguousarray(astronaut_rgb[:, :240])
    face = shared_finder().find(cut)[0]
    assert face.landmarks[:, 0].max() > 240 + 5  # the mesh runs on past the edge

    plan = plan_crop(name, face, cut.shape[1], cut.shape[0], person_matte(to_tensor(cut), [face]))

    assert not plan.reaches_past_edge
    corners = _plan_corners(plan)
    assert corners[:, 0].min() >= -0.5
    assert corners[:, 0].max() <= 240.5
    assert corners[:, 1].min() >= -0.5
    assert corners[:, 1].max() <= 512.5


def _plan_corners(plan) -> np.ndarray:
    angle = math.radians(plan.angle_degrees)
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [plan.width / 2, plan.height / 2]
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return half @ rotation.T + [plan.center_x, plan.center_y]


def test_classic_closer_rather_than_extended(astronaut_rgb):
    # The astronaut cut 300 px tall: even the tightest classic framing reaches 12 px below the frame, so the crop
    # comes closer instead of stretching her shoulders into the missing part.
    short = np.ascontiguousarray(astronaut_rgb[:300])
    face = shared_finder().find(short)[0]

    plan = plan_crop("classic", face, short.shape[1], short.shape[0], person_matte(to_tensor(short), [face]))

    assert not plan.reaches_past_edge
    corners = _plan_corners(plan)
    assert corners[:, 1].max() <= 300.5
