"""Frame analysis: each measure on images with a known defect, the verdict rules, file errors and translations."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from pipeline import analysis_measures as measures
from pipeline.analysis import analyze_file, analyze_files, analyze_image
from pipeline.analysis_reasons import (
    BLOCKINESS_LIMIT,
    CAST_LIMIT,
    MESSAGES,
    MIN_EYE_DISTANCE,
    judge_frame,
)
from pipeline.i18n import gettext_for
from pipeline.selection import EXPLANATIONS, PROBLEM_LABELS


def srgb_scale_linear(rgb: np.ndarray, gains) -> np.ndarray:
    """Multiply each channel by a gain in linear light and re-encode to 8-bit sRGB."""
    linear = measures.srgb_to_linear(rgb.astype(np.float32) / 255.0) * np.asarray(gains, dtype=np.float32)
    linear = np.clip(linear, 0, 1)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(encoded * 255).astype(np.uint8)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])


def landscape_without_face() -> np.ndarray:
    """A sky, a hill line and grain: a frame in which no face can be found."""
    rng = np.random.default_rng(3)
    height, width = 480, 720
    rows = np.linspace(0, 1, height)[:, None, None]
    frame = np.concatenate([120 + 80 * rows, 170 + 50 * rows, 235 - 20 * rows], axis=2) * np.ones((1, width, 1))
    ridge = 300 + 40 * np.sin(np.linspace(0, 9, width)) + 15 * np.sin(np.linspace(0, 37, width))
    below_ridge = np.arange(height)[:, None] >= ridge[None, :]
    frame[below_ridge] = (60, 110, 50)
    frame += rng.normal(0, 6, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def astronaut_analysis(astronaut_rgb):
    return analyze_image(astronaut_rgb, path="astronaut.png")


# ---------------------------------------------------------------------------------------------------------------
# Measures


def test_blockiness_finds_grid_after_crop_and_rotation(astronaut_rgb):
    gray_q10 = cv2.cvtColor(jpeg_roundtrip(astronaut_rgb, 10), cv2.COLOR_RGB2GRAY)
    gray_q95 = cv2.cvtColor(jpeg_roundtrip(astronaut_rgb, 95), cv2.COLOR_RGB2GRAY)

    shifted_and_turned = np.rot90(gray_q10[3:, 5:])

    assert measures.blockiness(gray_q10) > BLOCKINESS_LIMIT
    assert measures.blockiness(shifted_and_turned) > BLOCKINESS_LIMIT
    assert measures.blockiness(gray_q95) < 2.0


def test_noise_level_follows_added_noise():
    rows, columns = np.mgrid[0:300, 0:400]
    smooth = (60 + 0.3 * columns + 0.2 * rows).astype(np.float32)
    noisy = np.clip(smooth + np.random.default_rng(1).normal(0, 8, smooth.shape), 0, 255)

    clean_sigma = measures.noise_level(np.round(smooth).astype(np.uint8))
    noisy_sigma = measures.noise_level(np.round(noisy).astype(np.uint8))

    assert clean_sigma < 1.0
    assert 4.0 < noisy_sigma < 10.0


def test_color_cast_of_warm_white_balance(astronaut_rgb):
    warm = srgb_scale_linear(astronaut_rgb, (1.3, 1.0, 0.65))

    neutral_a, neutral_b = measures.color_cast(astronaut_rgb)
    warm_a, warm_b = measures.color_cast(warm)
    verdict = analyze_image(warm)

    assert np.hypot(neutral_a, neutral_b) < CAST_LIMIT
    assert warm_b > CAST_LIMIT
    assert "color_cast" in verdict.codes
    assert "yellow" in next(reason for reason in verdict.reasons if reason.code == "color_cast").message("en")


def test_roll_follows_image_rotation(astronaut_rgb, astronaut_analysis):
    face = astronaut_analysis.subject_face
    center = tuple(float(value) for value in np.mean(face.landmarks[:, :2], axis=0))
    rotation = cv2.getRotationMatrix2D(center, 12.0, 1.0)  # counter-clockwise on screen
    rotated = cv2.warpAffine(astronaut_rgb, rotation, (512, 512), borderMode=cv2.BORDER_REFLECT)

    turned = analyze_image(rotated)

    assert turned.metrics["roll"] == pytest.approx(astronaut_analysis.metrics["roll"] - 12.0, abs=1.0)


def test_strong_tilt_gives_head_tilted(astronaut_rgb, astronaut_analysis):
    center = tuple(float(value) for value in np.mean(astronaut_analysis.subject_face.landmarks[:, :2], axis=0))
    rotated = cv2.warpAffine(
        astronaut_rgb, cv2.getRotationMatrix2D(center, -24.0, 1.0), (512, 512), borderMode=cv2.BORDER_REFLECT
    )

    verdict = analyze_image(rotated)

    assert "head_tilted" in verdict.codes
    assert "head_tilted" not in astronaut_analysis.codes


def test_yaw_changes_sign_when_mirrored(shared_photos):
    rgb = np.ascontiguousarray(cv2.imread(str(shared_photos / "obama2.jpg"))[..., ::-1])

    yaw = analyze_image(rgb).metrics["yaw"]
    mirrored_yaw = analyze_image(np.ascontiguousarray(rgb[:, ::-1])).metrics["yaw"]

    assert abs(yaw) > 8.0
    assert mirrored_yaw == pytest.approx(-yaw, abs=3.0)


def test_eye_openness_from_lids():
    landmarks = np.zeros((478, 3), dtype=np.float32)
    landmarks[33, :2], landmarks[133, :2] = (0, 0), (30, 0)
    landmarks[160, :2], landmarks[144, :2] = (10, -4), (10, 5)
    landmarks[158, :2], landmarks[153, :2] = (20, -3), (20, 6)
    landmarks[263, :2], landmarks[362, :2] = (100, 0), (70, 0)
    landmarks[385, :2], landmarks[380, :2] = (80, -1), (80, 1)
    landmarks[387, :2], landmarks[373, :2] = (90, -1), (90, 2)

    right, left = measures.eye_openness(landmarks)

    assert right == pytest.approx(9 / 30)
    assert left == pytest.approx(2.5 / 30)


@pytest.mark.parametrize(
    ("right", "left", "expected"),
    [(0.28, 0.30, None), (0.06, 0.08, "The eyes are closed"), (0.05, 0.29, "One eye is closed")],
)
def test_eyes_closed_rule(right, left, expected):
    metrics = {"face_count": 1, "eye_openness_right": right, "eye_openness_left": left}

    reasons = [reason for reason in judge_frame(metrics, "only", 1) if reason.code == "eyes_closed"]

    if expected is None:
        assert reasons == []
    else:
        assert reasons[0].message("en").startswith(expected)


def test_low_resolution_limit_in_original_pixels():
    below = judge_frame({"face_count": 1, "eye_distance_px": MIN_EYE_DISTANCE - 1}, "only", 1)
    above = judge_frame({"face_count": 1, "eye_distance_px": MIN_EYE_DISTANCE + 1}, "only", 1)

    assert "low_resolution" in [reason.code for reason in below]
    assert "low_resolution" not in [reason.code for reason in above]


# ---------------------------------------------------------------------------------------------------------------
# Whole frames


def test_astronaut_frame_measurements(astronaut_analysis):
    metrics = astronaut_analysis.metrics

    assert astronaut_analysis.subject_choice == "only"
    assert astronaut_analysis.subject_face.landmarks.shape == (478, 3)
    assert abs(metrics["yaw"]) < 10
    assert min(metrics["eye_openness_right"], metrics["eye_openness_left"]) > 0.15
    assert 50 < metrics["skin_lightness"] < 85
    assert "sharp_face" in astronaut_analysis.codes
    assert not {"blur", "underexposed", "overexposed", "eyes_closed", "face_cut_by_edge"} & set(astronaut_analysis.codes)


def test_coordinates_are_original_pixels(astronaut_rgb, astronaut_analysis):
    half = cv2.resize(astronaut_rgb, (256, 256), interpolation=cv2.INTER_AREA)

    from_preview = analyze_image(half, original_size=(512, 512), scale=0.5)

    full_face, preview_face = astronaut_analysis.subject_face, from_preview.subject_face
    assert (from_preview.width, from_preview.height) == (512, 512)
    assert preview_face.box[2] == pytest.approx(full_face.box[2], rel=0.06)
    assert np.median(np.abs(preview_face.landmarks[:, :2] - full_face.landmarks[:, :2])) < 3.0
    assert preview_face.eye_distance == pytest.approx(full_face.eye_distance, rel=0.05)


def test_frame_without_face():
    verdict = analyze_image(landscape_without_face())

    assert verdict.codes == ["no_face"]
    assert verdict.score == 0
    assert verdict.faces == []


def test_face_cut_by_left_edge(astronaut_rgb, astronaut_analysis):
    x, _, width, _ = astronaut_analysis.subject_face.box
    cut = np.ascontiguousarray(astronaut_rgb[:, int(x + 0.2 * width) :])

    verdict = analyze_image(cut)

    assert "face_cut_by_edge" in verdict.codes
    assert "left edge" in verdict.reasons[0].message("en")


def test_head_top_cut_above_forehead(astronaut_rgb, astronaut_analysis):
    landmarks = astronaut_analysis.subject_face.landmarks
    forehead_y, chin_y = landmarks[10, 1], landmarks[152, 1]
    top = int(forehead_y - 0.1 * (chin_y - forehead_y))
    cropped = np.ascontiguousarray(astronaut_rgb[top:])

    verdict = analyze_image(cropped)

    assert "head_top_cut" in verdict.codes
    assert "face_cut_by_edge" not in verdict.codes


def test_two_faces_name_the_larger_subject(astronaut_rgb):
    small = cv2.resize(astronaut_rgb, (300, 300), interpolation=cv2.INTER_AREA)
    right_half = np.full((512, 320, 3), 128, dtype=np.uint8)
    right_half[100:400, 10:310] = small
    pair = np.ascontiguousarray(np.hstack([astronaut_rgb, right_half]))

    verdict = analyze_image(pair)

    reason = next(reason for reason in verdict.reasons if reason.code == "multiple_faces")
    assert len(verdict.faces) == 2
    assert verdict.subject_face.box[0] < 512
    assert verdict.subject_choice == "largest"
    assert "the largest, number 1 from the left" in reason.message("en")


# ---------------------------------------------------------------------------------------------------------------
# Files, errors, JSON and Dutch


def test_bad_files_carry_their_error(tmp_path, astronaut_rgb):
    from PIL import Image

    good = tmp_path / "good.jpg"
    Image.fromarray(astronaut_rgb).save(good, quality=95)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("these are not pixels")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:3000])

    results = analyze_files([tmp_path / "missing.jpg", empty, not_image, truncated, good])

    assert [result.error.code if result.error else None for result in results[:3]] == [
        "file_not_found", "file_empty", "not_an_image",
    ]
    assert results[3].error.code in ("file_truncated", "unreadable")
    assert all(result.score == 0 for result in results[:3])
    assert results[4].error is None
    assert results[4].has_face


def test_error_message_in_dutch(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSHOT_LANG", "nl")

    result = analyze_file(tmp_path / "missing.jpg")

    assert result.reasons[0].code == "file_not_found"
    assert "niet gevonden" in result.reasons[0].message()
    assert "niet gevonden" in result.to_dict()["reasons"][0]["message"]


def test_to_dict_is_json_ready(astronaut_analysis):
    document = json.loads(json.dumps(astronaut_analysis.to_dict("en", landmarks=True)))

    assert document["file"] == "astronaut.png"
    assert 0 <= document["score"] <= 100
    assert {"code", "message"} <= set(document["reasons"][0])
    assert len(document["faces"][0]["landmarks"]) == 478
    assert {"yaw", "pitch", "roll", "face_detail_ratio", "skin_lightness", "blockiness"} <= set(document["metrics"])


def test_dutch_catalog_covers_every_message():
    dutch = gettext_for("nl")
    from pipeline.errors import MESSAGES as ERROR_MESSAGES

    texts = list(MESSAGES.values()) + list(PROBLEM_LABELS.values()) + list(EXPLANATIONS.values())
    texts.append(ERROR_MESSAGES["unreadable"])

    untranslated = [text for text in texts if dutch(text) == text]
    assert untranslated == []


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_original_crop_follows_exif_orientation(tmp_path, astronaut_rgb, orientation):
    from PIL import Image

    from pipeline.analysis import _OriginalCropReader

    # Store the upright astronaut so that the EXIF orientation turns it upright again.
    turn_back = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_270, 8: Image.Transpose.ROTATE_90}
    store = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    upright = Image.fromarray(astronaut_rgb[:, :400]).convert("L")
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"turned-{orientation}.png"
    upright.transpose(store[orientation]).save(path, exif=exif)
    region = (60, 150, 260, 300)

    crop = _OriginalCropReader(str(path), orientation)(region)

    expected = np.asarray(upright)[region[1] : region[3], region[0] : region[2]]
    assert np.array_equal(np.asarray(Image.fromarray(crop).transpose(turn_back[orientation])), expected)


def test_black_bars_reason_and_measures(astronaut_rgb, astronaut_analysis):
    pillarboxed = cv2.copyMakeBorder(astronaut_rgb, 0, 0, 256, 256, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    verdict = analyze_image(pillarboxed, path="pillarboxed.png")

    codes = [reason.code for reason in verdict.reasons]
    assert "black_bars" in codes
    assert "black_bars" not in [reason.code for reason in astronaut_analysis.reasons]
    assert verdict.metrics["black_bars_pct"] == pytest.approx(50.0, abs=1.0)
    # Half the frame is black, yet its crushed shadows and median lightness are the picture's own.
    assert verdict.metrics["frame_crushed_pct"] == pytest.approx(astronaut_analysis.metrics["frame_crushed_pct"], abs=1.0)
    assert verdict.metrics["frame_lightness"] == pytest.approx(astronaut_analysis.metrics["frame_lightness"], abs=2.0)
