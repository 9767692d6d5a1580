"""Tests of `headshot process` and `headshot styles`: real frames through the whole pipeline into real files."""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.errors import HeadshotError
from pipeline.faces import Face
from pipeline.request import JobRequest

PARTS = ("pipeline.photo_io", "pipeline.analysis", "pipeline.selection", "pipeline.matte", "pipeline.backdrops", "pipeline.crops", "pipeline.relight")


def require_parts() -> None:
    """Skip unless every pipeline part a job runs through is importable."""
    for module_name in PARTS:
        pytest.importorskip(module_name, reason=f"{module_name} is not in the tree yet")
    retouch = pytest.importorskip("pipeline.retouch", reason="pipeline.retouch is not in the tree yet")
    if not hasattr(retouch, "retouch"):
        pytest.skip("pipeline.retouch has no retouch() yet")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def face_mask(rgb: np.ndarray, growth: float = 1.6) -> np.ndarray:
    """Return a mask of the face found independently of the job, its box grown by `growth` around the centre."""
    from pipeline.faces import shared_finder

    faces = shared_finder().find(rgb, with_mesh=False)
    assert faces, "the face finder found no face in the test frame"
    x, y, width, height = faces[0].box
    center_x, center_y = x + width / 2, y + height / 2
    half_width, half_height = growth * width / 2, growth * height / 2
    mask = np.zeros(rgb.shape[:2], dtype=bool)
    mask[max(0, int(center_y - half_height)) : int(center_y + half_height), max(0, int(center_x - half_width)) : int(center_x + half_width)] = True
    return mask


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory, astronaut_rgb) -> Path:
    path = tmp_path_factory.mktemp("frames") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def astronaut_job(tmp_path_factory, astronaut_png):
    """One job on the astronaut: as-shot, white and brand-colour backdrops; full frame, square and passport crops."""
    require_parts()
    from pipeline.process import run_job

    output_dir = tmp_path_factory.mktemp("astronaut-out")
    input_hash = sha256(astronaut_png)
    events = []
    request = JobRequest(
        frames=[str(astronaut_png)],
        backdrops=["original", "white", "color:#1a2b3c"],
        lights=["original"],
        crops=["original", "square", "passport"],
    )
    result = run_job(request, output_dir, on_event=events.append)
    return {"result": result, "events": events, "output_dir": output_dir, "input": astronaut_png, "input_hash": input_hash}


EXPECTED_ASTRONAUT_FILES = {
    "astronaut_original_original_original.png",
    "astronaut_original_original_square.png",
    "astronaut_white_original_original.png",
    "astronaut_white_original_square.png",
    "astronaut_white_original_passport.png",
    "astronaut_color-1a2b3c_original_original.png",
    "astronaut_color-1a2b3c_original_square.png",
}


def test_process_writes_expected_files(astronaut_job):
    names = {path.name for path in astronaut_job["output_dir"].iterdir()}
    assert names == EXPECTED_ASTRONAUT_FILES | {"report.json", "contact-sheet.jpg"}
    assert {variant.path.name for variant in astronaut_job["result"].variants} == EXPECTED_ASTRONAUT_FILES


def test_process_leaves_no_partial_files(astronaut_job):
    leftovers = [path.name for path in astronaut_job["output_dir"].iterdir() if path.name.startswith(".") or path.suffix == ".part"]
    assert leftovers == []


def test_process_leaves_input_unchanged(astronaut_job):
    assert sha256(astronaut_job["input"]) == astronaut_job["input_hash"]


def test_report_names_every_variant_and_recipe(astronaut_job):
    report = json.loads((astronaut_job["output_dir"] / "report.json").read_text(encoding="utf-8"))
    assert report["engine"]["name"] == "headshot-studio"
    assert report["engine"]["version"]
    assert report["contact_sheet"] == "contact-sheet.jpg"
    assert {variant["file"] for variant in report["variants"]} == EXPECTED_ASTRONAUT_FILES

    for variant in report["variants"]:
        recipe = variant["recipe"]
        assert (astronaut_job["output_dir"] / variant["file"]).is_file()
        assert recipe["source"]["sha256"] == astronaut_job["input_hash"]
        assert recipe["output"]["format"] == "png"
        assert recipe["output"]["bit_depth"] == 8
        assert recipe["retouch"]["preset"] in ("natural", "off")
        assert isinstance(recipe["retouch"]["settings"], dict) and recipe["retouch"]["settings"]
        assert recipe["crop"]["output_width"] == variant["width"]
        assert recipe["crop"]["output_height"] == variant["height"]
        assert isinstance(recipe["crop"]["reaches_past_edge"], bool)
        with Image.open(astronaut_job["output_dir"] / variant["file"]) as image:
            assert image.size == (variant["width"], variant["height"])

    frame = report["frames"][0]
    assert frame["selected"] is True
    assert frame["rank"] == 1
    assert frame["score"] == pytest.approx(astronaut_job["result"].variants[0].score)
    assert isinstance(frame["reasons"], list)
    assert frame["sha256"] == astronaut_job["input_hash"]
    assert sorted(frame["variants"]) == sorted(EXPECTED_ASTRONAUT_FILES)


def test_passport_is_white_unretouched_827x1063(astronaut_job):
    report = json.loads((astronaut_job["output_dir"] / "report.json").read_text(encoding="utf-8"))
    passport = next(variant for variant in report["variants"] if variant["recipe"]["crop"]["name"] == "passport")
    assert (passport["width"], passport["height"]) == (827, 1063)
    assert passport["recipe"]["backdrop"]["kind"] == "white"
    assert passport["recipe"]["retouch"]["preset"] == "off"
    assert set(passport["recipe"]["overrides"]["parts"]) == {"backdrop", "retouch"}
    assert passport["recipe"]["light"]["name"] == "original"

    rgb = read_rgb(astronaut_job["output_dir"] / passport["file"])
    assert rgb.shape[:2] == (1063, 827)
    top_corners = np.concatenate([rgb[:40, :40].reshape(-1, 3), rgb[:40, -40:].reshape(-1, 3)])
    assert top_corners.mean() > 240

    # It prints at 35×45 mm: 600 pixels per inch in the file; the square keeps the source's resolution.
    with Image.open(astronaut_job["output_dir"] / passport["file"]) as image:
        assert image.info["dpi"] == pytest.approx((600, 600), abs=0.01)
        assert 827 / image.info["dpi"][0] * 25.4 == pytest.approx(35.0, abs=0.1)
    assert passport["recipe"]["output"]["dpi"] == 600
    square = next(variant for variant in report["variants"] if variant["recipe"]["crop"]["name"] == "square")
    assert square["recipe"]["output"]["dpi"] is None  # the astronaut PNG has no print resolution of its own to keep


def test_retouch_only_variant_is_pixel_aligned(astronaut_job, astronaut_rgb):
    path = astronaut_job["output_dir"] / "astronaut_original_original_original.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (astronaut_rgb.shape[1], astronaut_rgb.shape[0])
    output = read_rgb(path).astype(np.float32)
    difference = np.abs(output - astronaut_rgb.astype(np.float32)).mean(axis=2)
    face = face_mask(astronaut_rgb)
    assert difference[~face].mean() < 1.0
    assert difference[face].max() > 0, "natural retouching left the face untouched"


def test_contact_sheet_decodes(astronaut_job):
    path = astronaut_job["result"].contact_sheet_path
    assert path == astronaut_job["output_dir"] / "contact-sheet.jpg"
    with Image.open(path) as sheet:
        assert sheet.format == "JPEG"
        sheet.load()
        width, height = sheet.size
    # Seven thumbnails of at most 360 pixels: four columns, two rows.
    assert width >= 4 * 360
    assert height >= 2 * 360


def test_job_events_cover_stages_and_variants(astronaut_job):
    from pipeline.jobs import EventKind, Stage

    events = astronaut_job["events"]
    started = {event.stage for event in events if event.kind == EventKind.stage_started}
    assert {Stage.analysing, Stage.selecting, Stage.reading, Stage.matting, Stage.retouching, Stage.compositing, Stage.writing} <= started
    scored = [event for event in events if event.kind == EventKind.frame_scored]
    assert len(scored) == 1
    assert all("code" in reason and reason["message"] for reason in scored[0].reasons)
    ready = [event.variant.path.name for event in events if event.kind == EventKind.variant_ready]
    assert sorted(ready) == sorted(EXPECTED_ASTRONAUT_FILES)
    fractions = [event.fraction for event in events if event.kind == EventKind.progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


def test_stop_request_cancels_between_variants(tmp_path, astronaut_png):
    require_parts()
    from pipeline.jobs import EventKind, JobCanceled
    from pipeline.process import run_job

    written = []

    def on_event(event):
        if event.kind == EventKind.variant_ready:
            written.append(event.variant.path)

    request = JobRequest(frames=[str(astronaut_png)], backdrops=["original"], lights=["original"], crops=["square", "portrait", "classic"])
    with pytest.raises(JobCanceled):
        run_job(request, tmp_path, on_event=on_event, should_stop=lambda: bool(written))
    names = {path.name for path in tmp_path.iterdir()}
    assert "report.json" not in names
    assert not [name for name in names if name.startswith(".") or name.endswith(".part")]
    assert all(path.is_file() for path in written)


def test_stop_during_retouch_ends_helper_thread(tmp_path, astronaut_png):
    # The matte is made in a helper thread while the retouch runs; a stop then ends both, and nothing is written.
    require_parts()
    import threading

    from pipeline.jobs import EventKind, JobCanceled, Stage
    from pipeline.process import run_job

    started = []

    def on_event(event):
        if event.kind == EventKind.stage_started:
            started.append(event.stage)

    request = JobRequest(frames=[str(astronaut_png)], backdrops=["white"], lights=["natural"], crops=["square"])
    with pytest.raises(JobCanceled):
        run_job(request, tmp_path / "out", on_event=on_event, should_stop=lambda: Stage.retouching in started)

    assert Stage.matting in started
    assert not (tmp_path / "out").exists()
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith(("helper-", "encode-"))]


@pytest.mark.parametrize(
    ("field", "value", "allowed_example"),
    [
        ("backdrops", ["neon"], "studio-grey"),
        ("backdrops", ["color:#12345"], "color:#RRGGBB"),
        ("lights", ["disco"], "rembrandt-left"),
        ("crops", ["circle"], "passport"),
        ("retouch", "heavy", "glamour"),
        ("makeup", "smoky", "natural"),
        ("output_format", "gif", "tiff"),
        ("bit_depth", 12, "16"),
        ("top", 0, "1"),
    ],
)
def test_unknown_option_is_invalid_option(astronaut_png, field, value, allowed_example):
    from pipeline.process import validate_request

    request = JobRequest(frames=[str(astronaut_png)])
    setattr(request, field, value)
    with pytest.raises(HeadshotError) as caught:
        validate_request(request)
    assert caught.value.code == "invalid_option"
    assert allowed_example in caught.value.user_message("en")


def test_cli_invalid_option_exits_2_in_dutch(tmp_path, astronaut_png, capsys, monkeypatch):
    from daemon.cli import main

    monkeypatch.setenv("HEADSHOT_LANG", "nl")
    code = main(["process", str(astronaut_png), "--out", str(tmp_path / "out"), "--backdrop", "white,neon"])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("Fout invalid_option: Ongeldige optie --backdrop: neon")
    assert "studio-grey" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("field", "value", "language", "hint"),
    [
        ("lights", ["rembrandt"], "en", "Did you mean rembrandt-left or rembrandt-right?"),
        ("lights", ["rembrandt"], "nl", "Bedoelde je rembrandt-left of rembrandt-right?"),
        ("backdrops", ["whte"], "en", "Did you mean white?"),
        ("backdrops", ["whte"], "nl", "Bedoelde je white?"),
        ("crops", ["pasport"], "en", "Did you mean passport or us-passport?"),
        ("retouch", "glam", "nl", "Bedoelde je glamour?"),
        ("output_format", "jpg", "en", "Did you mean jpeg or png?"),
    ],
)
def test_mistyped_name_gets_suggestion(astronaut_png, field, value, language, hint):
    from pipeline.process import validate_request

    request = JobRequest(frames=[str(astronaut_png)])
    setattr(request, field, value)
    with pytest.raises(HeadshotError) as caught:
        validate_request(request)

    message = caught.value.user_message(language)
    assert caught.value.code == "invalid_option"
    assert message.endswith(f". {hint}")


@pytest.mark.parametrize(("field", "value"), [("lights", ["disco"]), ("backdrops", ["color:#12345"]), ("bit_depth", 12)])
def test_unlike_name_gets_no_suggestion(astronaut_png, field, value):
    from pipeline.process import validate_request

    request = JobRequest(frames=[str(astronaut_png)])
    setattr(request, field, value)
    with pytest.raises(HeadshotError) as caught:
        validate_request(request)

    assert caught.value.code == "invalid_option"
    assert "Did you mean" not in caught.value.user_message("en")
    assert "Bedoelde je" not in caught.value.user_message("nl")


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "Error invalid_option: Invalid option --light: rembrandt. Allowed: "),
    ("nl", "Fout invalid_option: Ongeldige optie --light: rembrandt. Toegestaan: "),
])
def test_cli_suggests_light_names(tmp_path, astronaut_png, capsys, monkeypatch, language, expected):
    from daemon.cli import main

    monkeypatch.setenv("HEADSHOT_LANG", language)
    code = main(["process", str(astronaut_png), "--out", str(tmp_path / "out"), "--light", "rembrandt"])

    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.startswith(expected)
    assert error.endswith({"en": "rim-right. Did you mean rembrandt-left or rembrandt-right?",
                           "nl": "rim-right. Bedoelde je rembrandt-left of rembrandt-right?"}[language])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("language", "summary", "skipped"), [
    ("en", "Variants written to", "Skipped (not_an_image): {file} is not an image"),
    ("nl", "Varianten geschreven naar", "Overgeslagen (not_an_image): {file} is geen afbeelding"),
])
def test_cli_summary_names_skipped_frames(tmp_path, astronaut_png, capsys, monkeypatch, language, summary, skipped):
    require_parts()
    from daemon.cli import main

    monkeypatch.setenv("HEADSHOT_LANG", language)
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_text("shopping list", encoding="utf-8")
    code = main(["process", str(astronaut_png), str(not_a_photo), "--out", str(tmp_path / "out"),
                 "--backdrop", "original", "--light", "original", "--crop", "original"])

    output = capsys.readouterr().out
    assert code == 0
    assert summary in output
    assert skipped.format(file=not_a_photo) in output


def test_cli_json_output_with_defaults(tmp_path, astronaut_png, capsys):
    require_parts()
    from daemon.cli import main

    code = main(["process", str(astronaut_png), "--out", str(tmp_path), "--json"])
    assert code == 0
    output = json.loads(capsys.readouterr().out)
    report = output["report"]
    assert Path(output["report_path"]) == tmp_path / "report.json"
    # The defaults: the best frame, natural retouching, three backdrops, two crops.
    assert {variant["file"] for variant in report["variants"]} == {
        f"astronaut_{backdrop}_natural_{crop}.png" for backdrop in ("studio-grey", "white", "blur") for crop in ("square", "portrait")
    }
    assert all(variant["recipe"]["retouch"]["preset"] == "natural" for variant in report["variants"])
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["job_id"] == report["job_id"]


def test_styles_json_lists_dutch_names(capsys):
    from daemon.cli import main

    assert main(["styles", "--json"]) == 0
    styles = json.loads(capsys.readouterr().out)
    kinds = {style["kind"] for style in styles}
    assert kinds == {"backdrop", "light", "crop", "retouch", "makeup"}
    by_name = {(style["kind"], style["name"]): style for style in styles}
    for key in [("backdrop", "white"), ("crop", "passport"), ("retouch", "off"), ("makeup", "none"), ("light", "natural")]:
        assert key in by_name
    assert by_name[("backdrop", "white")]["nl"] == "Wit"
    assert by_name[("crop", "passport")]["nl"].startswith("Pasfoto")
    assert all(style["en"] and style["nl"] for style in styles)
    translated = [style for style in styles if style["nl"] != style["en"]]
    assert len(translated) >= 0.8 * len(styles)


def test_list_styles_matches_implementations():
    from pipeline.styles import list_styles

    listed = {(style["kind"], style["name"]) for style in list_styles()}
    for kind, module_name, attribute in [
        ("backdrop", "pipeline.backdrops", "BACKDROPS"),
        ("light", "pipeline.relight", "LIGHTS"),
        ("crop", "pipeline.crops", "CROPS"),
        ("retouch", "pipeline.retouch", "RETOUCH_PRESETS"),
        ("makeup", "pipeline.retouch", "MAKEUP_PRESETS"),
    ]:
        try:
            names = getattr(importlib.import_module(module_name), attribute)
        except (ModuleNotFoundError, AttributeError):
            continue
        assert {(kind, name) for name in names} <= listed


def test_session_of_two_shared_frames(tmp_path, shared_photos):
    """Two real portraits, both made into headshots; the JPEG retouch-only variant stays aligned with its frame."""
    require_parts()
    from pipeline.process import run_job

    frames = [shared_photos / "biden2.jpg", shared_photos / "obama.jpg"]
    hashes = [sha256(frame) for frame in frames]
    request = JobRequest(frames=[str(frame) for frame in frames], top=2, backdrops=["original", "white"], lights=["original"], crops=["original", "portrait"])
    result = run_job(request, tmp_path)

    names = {variant.path.name for variant in result.variants}
    expected = {f"{stem}_{backdrop}_original_{crop}.jpg" for stem in ("biden2", "obama") for backdrop in ("original", "white") for crop in ("original", "portrait")}
    assert names == expected
    assert [sha256(frame) for frame in frames] == hashes
    ranks = sorted(frame["rank"] for frame in result.report["frames"])
    assert ranks == [1, 2]

    source = read_rgb(frames[0])
    output_path = tmp_path / "biden2_original_original_original.jpg"
    with Image.open(output_path) as image:
        assert image.format == "JPEG"
        assert image.size == (source.shape[1], source.shape[0])
    difference = np.abs(read_rgb(output_path).astype(np.float32) - source.astype(np.float32)).mean(axis=2)
    assert difference[~face_mask(source)].mean() < 1.0


def test_variant_file_names_are_filesystem_safe():
    from pipeline.process import VariantSpec, variant_file_name

    assert variant_file_name("obama", VariantSpec("color:#1a2b3c", "rembrandt-left", "square", "natural"), ".jpg") == "obama_color-1a2b3c_rembrandt-left_square.jpg"
    assert variant_file_name("obama", VariantSpec("image:/backdrops/Grey wall.png", "natural", "portrait", "natural"), ".tif") == "obama_image-Grey-wall_natural_portrait.tif"


def test_passport_crops_collapse_to_one_white_variant():
    from pipeline.process import plan_variants

    request = JobRequest(frames=["x.jpg"], backdrops=["studio-grey", "blur"], lights=["natural", "butterfly"], crops=["square", "passport"])
    variants = plan_variants(request)
    passports = [variant for variant in variants if variant.crop == "passport"]
    assert len(variants) == 2 * 2 + 1
    assert [(variant.backdrop, variant.light, variant.retouch) for variant in passports] == [("white", "original", "off")]
    assert set(passports[0].overridden) == {"backdrop", "light", "retouch"}


def test_crop_region_margin_and_scale():
    from collections import namedtuple

    from pipeline.process import CropRegion

    Plan = namedtuple("Plan", "name center_x center_y angle_degrees width height output_width output_height reaches_past_edge")
    frame = np.arange(60 * 80 * 3, dtype=np.uint32).reshape(60, 80, 3).astype(np.uint16)
    past_top = Plan("square", 40.0, 10.0, 0.0, 40.0, 40.0, 40, 40, True)

    # A crop past the top alone gets a levelled region with its margin all round. The rows above the frame are
    # marked outside the picture, for `fill_past_picture`, and the frame's own rows are cut as they are.
    alone = CropRegion.around([past_top], 80, 60, keep_full_frame=False)
    assert alone.levelled
    assert alone.past_top
    assert alone.box == (20 - 8, -10 - 8, 60 + 8, 30 + 8)
    assert (alone.scale_x, alone.scale_y) == (1.0, 1.0)
    cut = alone.cut(frame)
    assert cut.shape == (56, 56, 3)
    assert np.array_equal(cut[18:], frame[:38, 12:68])
    inside = alone.picture_mask()[0].numpy()
    assert inside[:18].max() == 0
    assert inside[18:].min() == 1

    small = Plan("square", 40.0, 30.0, 0.0, 40.0, 40.0, 20, 20, False)
    reduced = CropRegion.around([small], 80, 60, keep_full_frame=False)
    assert reduced.scale_x == pytest.approx(0.5, abs=0.02)
    assert not reduced.reaches_past_edge
    assert reduced.cut(frame).shape[:2] == (reduced.height, reduced.width)


@pytest.mark.parametrize("pixels_scale", [1.0, 0.5])
def test_levelled_region_takes_out_the_roll(astronaut_rgb, pixels_scale):
    from pipeline.crops import CropPlan, apply_crop
    from pipeline.process import CropRegion, _region_tensor

    # 1. Two crops with one roll: the square is the sharper (1:1), the portrait shrinks 0.8×.
    square = CropPlan("square", 260.3, 250.6, 4.0, 300.0, 300.0, 300, 300, False)
    portrait = CropPlan("portrait", 255.0, 270.0, 4.0, 300.0, 375.0, 240, 300, False)
    region = CropRegion.around([square, portrait], 512, 512, keep_full_frame=False)
    assert region.levelled
    assert (region.scale_x, region.scale_y) == pytest.approx((1.0, 1.0))

    # 2. In the region the square is upright, its corner on a whole pixel and one region pixel per output pixel.
    in_region = region.plan(square)
    assert in_region.angle_degrees == 0.0
    assert in_region.center_x - in_region.width / 2 == pytest.approx(round(in_region.center_x - in_region.width / 2), abs=1e-6)

    # 3. Its crop matches the one resampled straight from the frame. The portrait is resampled twice, and a
    #    reduced decode has half the detail, so those are a little softer.
    pixels = astronaut_rgb if pixels_scale == 1.0 else cv2.resize(astronaut_rgb, (256, 256), interpolation=cv2.INTER_AREA)
    image = _region_tensor(region.cut(pixels, pixels_scale))
    assert image.shape == (3, region.height, region.width)
    frame = _region_tensor(astronaut_rgb)
    limits = {"square": 0.002, "portrait": 0.012} if pixels_scale == 1.0 else {"square": 0.03, "portrait": 0.03}
    for plan in (square, portrait):
        straight = apply_crop(frame, plan)
        levelled = apply_crop(image, region.plan(plan))
        assert levelled.shape == straight.shape
        assert float((levelled - straight).abs().mean()) < limits[plan.name], plan.name
        # The portrait's window is rounded to whole region pixels: it may move by half a pixel at most.
        shift_x, shift_y = cv2.phaseCorrelate(straight[1].numpy(), levelled[1].numpy())[0]
        assert math.hypot(shift_x, shift_y) < (0.05 if plan.name == "square" else 0.5), plan.name

    # 4. Landmarks move with the pixels: the nose tip of the region's face is where the region shows it.
    face = Face(box=(200.0, 150.0, 100.0, 120.0), score=0.9, keypoints=np.array([[280.0, 230.0]] * 6, dtype=np.float32))
    x, y = region.face(face).keypoints[2]
    frame_x = region.left + x / region.scale_x
    frame_y = region.top + y / region.scale_y
    cos, sin = math.cos(region.angle), math.sin(region.angle)
    assert (cos * frame_x - sin * frame_y, sin * frame_x + cos * frame_y) == pytest.approx((280.0, 230.0), abs=1e-3)


def test_crop_region_straight_when_rolls_differ():
    from pipeline.crops import CropPlan
    from pipeline.process import CropRegion

    # The as-shot crop keeps the frame's pixels, so its region stays straight too.
    square = CropPlan("square", 260.0, 250.0, 4.0, 300.0, 300.0, 300, 300, False)
    assert not CropRegion.around([square], 512, 512, keep_full_frame=True).levelled
    other_roll = CropPlan("portrait", 255.0, 270.0, 3.0, 300.0, 375.0, 240, 300, False)
    assert not CropRegion.around([square, other_roll], 512, 512, keep_full_frame=False).levelled


def test_crop_region_cut_past_frame_edge():
    from collections import namedtuple

    from pipeline.process import CropRegion

    Plan = namedtuple("Plan", "name center_x center_y angle_degrees width height output_width output_height reaches_past_edge")
    frame = np.full((60, 80, 3), 200, dtype=np.uint8)
    past_top_and_bottom = Plan("portrait", 40.0, 30.0, 0.0, 40.0, 80.0, 40, 80, True)

    region = CropRegion.around([past_top_and_bottom], 80, 60, keep_full_frame=True)
    assert region.top < 0
    assert region.bottom > 60
    assert region.reaches_past_edge
    x0, y0, x1, y1 = region.inside_window
    assert (x1 - x0, y1 - y0) == (80, 60)

    cut = region.cut(frame)
    assert cut.shape == (region.height, region.width, 3)
    assert np.array_equal(cut[y0:y1, x0:x1], frame)
    assert cut[:y0].max() == 0, "past the edge is left for extend_frame"
    assert cut[y1:].max() == 0


def test_delivery_size_caps_long_side():
    from pipeline.crops import CropPlan
    from pipeline.process import _delivery_size

    cases = [
        ("square", (3550, 3550), (2048, 2048)),
        ("portrait", (3000, 3750), (2048, 2560)),
        ("banner", (4000, 2250), (2560, 1440)),
        ("classic", (3000, 4500), (2400, 3600)),
        ("square", (1200, 1200), (1200, 1200)),
        ("passport", (827, 1063), (827, 1063)),
        ("original", (6000, 4000), (6000, 4000)),
    ]
    for name, planned, delivered in cases:
        plan = CropPlan(name, 3000.0, 2000.0, 1.5, float(planned[0]), float(planned[1]), planned[0], planned[1], False)
        capped = _delivery_size(plan)
        assert (capped.output_width, capped.output_height) == delivered, name
        assert (capped.center_x, capped.width, capped.angle_degrees) == (plan.center_x, plan.width, plan.angle_degrees)


def swapped_primaries_profile() -> bytes:
    """Return an RGB profile with sRGB's red and green primaries swapped, so converting through it changes colours."""
    from pipeline.color import srgb_profile

    data = bytearray(srgb_profile())
    data[84:100] = bytes(16)  # the profile ID no longer matches, so leave it unset
    count = int.from_bytes(data[128:132], "big")
    entries = {bytes(data[132 + 12 * index : 136 + 12 * index]): 132 + 12 * index for index in range(count)}
    red, green = entries[b"rXYZ"], entries[b"gXYZ"]
    data[red + 4 : red + 12], data[green + 4 : green + 12] = data[green + 4 : green + 12], data[red + 4 : red + 12]
    return bytes(data).replace("sRGB".encode("utf-16-be"), "Swap".encode("utf-16-be"))


@pytest.mark.parametrize("orientation", [1, 6])
def test_reduced_decode_keeps_profile_and_pixels(tmp_path, astronaut_rgb, orientation):
    from pipeline.photo_io import probe
    from pipeline.process import CropRegion, _decode_for_region

    # 1. A 1600×1200 JPEG in a profile that is not sRGB, stored turned when the orientation says so.
    stored = cv2.resize(np.concatenate([astronaut_rgb, astronaut_rgb[:, ::-1], astronaut_rgb], axis=1)[:, :1536], (1600, 1200))
    profile = swapped_primaries_profile()
    exif = Image.Exif()
    exif[0x0112] = orientation
    turned = stored if orientation == 1 else np.ascontiguousarray(np.rot90(stored, k=1))
    path = tmp_path / "frame.jpg"
    Image.fromarray(turned).save(path, quality=95, icc_profile=profile, exif=exif.tobytes())
    info = probe(path)
    assert (info.width, info.height) == (1600, 1200)

    # 2. A region needed at 0.3 of the frame's resolution decodes at 1/2, upright and unconverted.
    region = CropRegion(400, 300, 1200, 900, 1600, 1200, 240, 180)
    photo, scale = _decode_for_region(str(path), info, region)
    assert scale == pytest.approx(0.5)
    assert photo.pixels.shape == (600, 800, 3)
    assert photo.icc_profile == profile
    expected = cv2.resize(stored, (800, 600), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(photo.pixels.astype(np.float32) - expected).mean() < 3.0


def test_variant_notes_translated():
    from pipeline.process import variant_notes

    recipe = {"crop": {"name": "banner", "angle_degrees": -1.234, "reaches_past_edge": True, "inside_black_bars": True}}
    assert [note["code"] for note in variant_notes(recipe, "en")] == ["black_bars", "extended_past_edge", "head_levelled"]
    english = variant_notes(recipe, "en")[2]["message"]
    dutch = variant_notes(recipe, "nl")
    assert english == "The head was levelled by 1.2°."
    assert dutch[2]["message"] == "Het hoofd is 1,2° rechtgezet."
    assert all(note["message"] != english_note["message"] for note, english_note in zip(dutch, variant_notes(recipe, "en")))

    level = {"crop": {"name": "square", "angle_degrees": 0.3, "reaches_past_edge": False, "width": 700.0, "output_width": 1040}}
    assert variant_notes(level, "en") == []

    enlarged = {"crop": {"name": "passport", "angle_degrees": 0.0, "width": 392.4, "output_width": 827}}
    assert [note["code"] for note in variant_notes(enlarged, "en")] == ["enlarged"]
    assert "enlarged 2.1×" in variant_notes(enlarged, "en")[0]["message"]
    assert "2,1× vergroot" in variant_notes(enlarged, "nl")[0]["message"]


def test_black_and_white_frame_stays_black_and_white(tmp_path, astronaut_rgb):
    from pipeline.process import run_job

    source = tmp_path / "mono.jpg"
    Image.fromarray(cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2GRAY), "L").save(source, quality=95)
    request = JobRequest(frames=[str(source)], backdrops=["white", "color:#1f4e79"], lights=["natural"], crops=["square"])
    result = run_job(request, tmp_path / "out")

    modes = {}
    for variant in result.variants:
        with Image.open(variant.path) as image:
            modes[variant.recipe["backdrop"]["name"]] = image.mode
    assert modes == {"white": "L", "color:#1f4e79": "RGB"}


def test_failed_job_leaves_no_empty_output_folder(tmp_path, capsys):
    from daemon.cli import main

    empty = tmp_path / "x.jpg"
    empty.write_bytes(b"")
    out = tmp_path / "new-folder" / "session" / "headshots"
    assert main(["process", str(empty), "--out", str(out)]) == 1
    assert "file_empty" in capsys.readouterr().err
    assert not (tmp_path / "new-folder").exists()


def test_output_path_that_is_a_file(tmp_path, astronaut_png, capsys, monkeypatch):
    from daemon.cli import main

    monkeypatch.setenv("HEADSHOT_LANG", "nl")
    not_a_folder = tmp_path / "out"
    not_a_folder.write_text("a file, not a folder")
    assert main(["process", str(astronaut_png), "--out", str(not_a_folder)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("Fout write_failed:")
    assert "het is een bestand, geen map" in error


def test_cli_summary_warns_small_face(tmp_path, astronaut_rgb, capsys):
    from daemon.cli import main

    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.cvtColor(cv2.resize(astronaut_rgb, (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR))
    assert main(["process", str(small), "--out", str(tmp_path / "out"), "--crop", "square", "--backdrop", "white"]) == 0
    printed = capsys.readouterr().out
    assert "small.png: The face is too small for a print or LinkedIn headshot" in printed


@pytest.mark.parametrize(("photo", "noted"), [("obama.jpg", True), ("obama3.jpg", False)])
def test_passport_notes_an_open_mouth(tmp_path, shared_photos, photo, noted):
    require_parts()
    from pipeline.process import run_job

    request = JobRequest(frames=[str(shared_photos / photo)], crops=["passport"], language="nl")
    result = run_job(request, tmp_path)
    variant = result.report["variants"][0]
    codes = [note["code"] for note in variant["notes"]]
    assert ("passport_mouth_open" in codes) is noted
    if noted:
        assert variant["recipe"]["crop"]["mouth_open"] > 0.08
        messages = [note["message"] for note in variant["notes"] if note["code"] == "passport_mouth_open"]
        assert messages[0].startswith("Voor een pasfoto")


def test_crop_past_top_continues_backdrop_not_hair(tmp_path, shared_photos):
    require_parts()
    from pipeline.process import run_job

    # biden2's hair nearly touches the frame's top, so its square reaches past the top for headroom. There the
    # picture continues as smooth backdrop; a mirror of the hair would bring fine detail back.
    rgb = cv2.imread(str(shared_photos / "biden2.jpg"))
    path = tmp_path / "tight.png"
    cv2.imwrite(str(path), cv2.resize(rgb, (900, 900), interpolation=cv2.INTER_AREA))
    request = JobRequest(frames=[str(path)], backdrops=["original"], lights=["original"], crops=["square"], retouch="off")
    result = run_job(request, tmp_path / "out")
    variant = result.report["variants"][0]
    assert "extended_past_edge" in [note["code"] for note in variant["notes"]]

    # Above the hair, in the middle columns (the frame's top edge is tilted by the levelling), the first rows lie
    # past the frame's top.
    output = cv2.imread(str(result.variants[0].path), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    height, width = output.shape
    detail = np.abs(cv2.Laplacian(output, cv2.CV_32F))
    past_top = detail[: int(0.01 * height), int(0.3 * width) : int(0.7 * width)].mean()
    hair = detail[int(0.05 * height) : int(0.15 * height), int(0.3 * width) : int(0.7 * width)].mean()
    assert past_top < 0.3 * hair  # a mirror of the hair measures 0.43


def write_unreadable_frames(folder: Path, source: Path) -> list[Path]:
    """Write an empty file, a text file and a JPEG cut off after 20 kB, each named .jpg."""
    folder.mkdir(parents=True, exist_ok=True)
    empty, text, cut = folder / "empty.jpg", folder / "text.jpg", folder / "trunc.jpg"
    empty.write_bytes(b"")
    text.write_text("shopping list", encoding="utf-8")
    cut.write_bytes(source.read_bytes()[:20_000])
    return [empty, text, cut]


@pytest.mark.parametrize(("language", "skipped", "final"), [
    ("en", ["None of the 3 photos could be used:",
            "Error not_an_image: {text} is not an image Headshot Studio can read.",
            "Error file_truncated: {cut} is incomplete: the image data ends early."],
     "Error file_empty: {empty} is empty (0 bytes). Export the photo again."),
    ("nl", ["Geen van de 3 foto's kon worden gebruikt:",
            "Fout not_an_image: {text} is geen afbeelding die Headshot Studio kan lezen.",
            "Fout file_truncated: {cut} is onvolledig"],
     "Fout file_empty: {empty} is leeg (0 bytes)."),
])
def test_cli_reports_every_unreadable_frame(tmp_path, capsys, monkeypatch, shared_photos, language, skipped, final):
    from daemon.cli import main

    monkeypatch.setenv("HEADSHOT_LANG", language)
    empty, text, cut = write_unreadable_frames(tmp_path / "bad", shared_photos / "obama.jpg")

    code = main(["process", str(empty), str(text), str(cut), "--out", str(tmp_path / "out")])

    lines = capsys.readouterr().err.strip().splitlines()
    names = {"empty": empty, "text": text, "cut": cut}
    assert code == 1
    assert len(lines) == 4
    assert lines[0] == skipped[0]
    assert lines[1].startswith(skipped[1].format(**names))
    assert lines[2].startswith(skipped[2].format(**names))
    assert lines[3].startswith(final.format(**names))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "Error write_failed: {folder} could not be written (permission denied)."),
    ("nl", "Fout write_failed: {folder} kon niet worden geschreven (toegang geweigerd)."),
])
def test_read_only_output_rejected_before_work(read_only_folder, astronaut_png, capsys, monkeypatch, language, expected):
    from daemon.cli import main
    from pipeline.process import run_job

    monkeypatch.setenv("HEADSHOT_LANG", language)
    events = []

    with pytest.raises(HeadshotError) as raised:
        run_job(JobRequest(frames=[str(astronaut_png)]), read_only_folder, on_event=events.append)
    code = main(["process", str(astronaut_png), "--out", str(read_only_folder)])

    assert raised.value.code == "write_failed"
    assert events == []  # no frame was analysed
    assert code == 1
    assert capsys.readouterr().err.strip().startswith(expected.format(folder=read_only_folder))
    assert list(read_only_folder.iterdir()) == []


def test_cli_prints_frame_note_once(tmp_path, astronaut_png, capsys):
    require_parts()
    from daemon.cli import main

    code = main(["process", str(astronaut_png), "--out", str(tmp_path / "out"), "--backdrop", "white,blur",
                 "--crop", "square,portrait,banner"])

    lines = capsys.readouterr().out.splitlines()
    variants = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))["variants"]
    levelled = [note["message"] for variant in variants for note in variant["notes"] if note["code"] == "head_levelled"]
    assert code == 0
    assert len(variants) == 6
    assert len(levelled) == 6  # every variant of the frame carries the note in report.json
    assert len(set(levelled)) == 1
    assert lines.count(f"astronaut.png: {levelled[0]}") == 1
    assert [line for line in lines if line.endswith(levelled[0])] == [f"astronaut.png: {levelled[0]}"]
    for variant in variants:
        for note in variant["notes"]:
            if note["code"] != "head_levelled":
                assert f"{variant['file']}: {note['message']}" in lines


def test_note_lines_keep_variant_notes():
    from pipeline.cli.process import note_lines

    levelled = {"code": "head_levelled", "message": "The head was levelled by 8.0°."}
    past_edge = {"code": "extended_past_edge", "message": "The crop reaches past the edge of the photo."}
    report = {"variants": [
        {"file": "obama_white_natural_square.jpg", "frame": "/photos/obama.jpg", "notes": [levelled]},
        {"file": "obama_white_natural_banner.jpg", "frame": "/photos/obama.jpg", "notes": [levelled, past_edge]},
        {"file": "biden_white_natural_square.jpg", "frame": "/photos/biden.jpg",
         "notes": [{"code": "head_levelled", "message": "The head was levelled by 3.0°."}]},
        {"file": "biden_white_natural_portrait.jpg", "frame": "/photos/biden.jpg",
         "notes": [{"code": "enlarged", "message": "The crop was enlarged 1.6×."}]},
    ]}

    assert note_lines(report) == [
        "obama.jpg: The head was levelled by 8.0°.",
        "biden.jpg: The head was levelled by 3.0°.",
        "obama_white_natural_banner.jpg: The crop reaches past the edge of the photo.",
        "biden_white_natural_portrait.jpg: The crop was enlarged 1.6×.",
    ]
