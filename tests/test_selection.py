"""Frame selection on real sessions: a portrait with degraded copies, the shared test photos, and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from daemon.cli import main as headshot
from pipeline.analysis import analyze_files
from pipeline.selection import select_frames

# Each degraded copy and the code it must carry.
EXPECTED_CODES = {
    "blurred.jpg": "blur",
    "dark.jpg": "underexposed",
    "bright.jpg": "overexposed",
    "quality10.jpg": "compression_artifacts",
    "quarter.jpg": "low_resolution",
}
QUALITY_CODES = {"blur", "underexposed", "overexposed", "compression_artifacts", "low_resolution"}
GOOD_ORIGINALS = ("biden2.jpg", "obama.jpg", "obama-1080p.jpg")


def exposure_change(rgb: np.ndarray, stops: float) -> np.ndarray:
    """Multiply by 2**stops in linear light, clip, and re-encode to 8-bit sRGB."""
    encoded = rgb.astype(np.float64) / 255.0
    linear = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)
    linear = np.clip(linear * 2.0**stops, 0, 1)
    encoded = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.round(encoded * 255).astype(np.uint8)


def write_session(folder: Path, rgb: np.ndarray, original: Path | None = None) -> list[Path]:
    """Write a portrait, its degraded copies and an EXIF-rotated twin; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)

    def save(name: str, pixels: np.ndarray, quality: int = 95, **options) -> Path:
        path = folder / name
        Image.fromarray(np.ascontiguousarray(pixels)).save(path, quality=quality, **options)
        return path

    width = rgb.shape[1]
    if original is not None:
        shutil.copyfile(original, folder / "original.jpg")
    else:
        save("original.jpg", rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # pixels stored a quarter turn to the left; orientation 6 turns them back to the right
    stored_turned = np.rot90(rgb, 1)
    paths = [
        folder / "original.jpg",
        save("rotated.jpg", stored_turned, exif=exif),
        save("blurred.jpg", cv2.GaussianBlur(rgb, (0, 0), 3.0 * width / 1000)),
        save("dark.jpg", exposure_change(rgb, -2.0)),
        save("bright.jpg", exposure_change(rgb, 1.5)),
        save("quality10.jpg", rgb, quality=10),
        save("quarter.jpg", cv2.resize(rgb, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)),
    ]
    return paths


def read_rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1])


@pytest.fixture(scope="module", params=["astronaut", *GOOD_ORIGINALS])
def session(request, tmp_path_factory, astronaut_rgb):
    """(name, analyses by file name, selection) for one portrait and its degraded copies."""
    if request.param == "astronaut":
        rgb, original = astronaut_rgb, None
    else:
        photos = request.getfixturevalue("shared_photos")
        original = photos / request.param
        rgb = read_rgb(original)
    paths = write_session(tmp_path_factory.mktemp(request.param.replace(".", "_")), rgb, original)
    analyses = analyze_files(paths)
    return request.param, {Path(analysis.path).name: analysis for analysis in analyses}, select_frames(analyses)


def test_session_ranks_original_first(session):
    _, _, selection = session

    best = Path(selection.frames[0].analysis.path).name

    assert best in ("original.jpg", "rotated.jpg")


def test_degraded_copies_carry_their_reason(session):
    _, analyses, _ = session

    missing = {name: code for name, code in EXPECTED_CODES.items() if code not in analyses[name].codes}

    assert missing == {}


def test_rotated_twin_matches_original(session):
    _, analyses, selection = session
    groups = {Path(frame.analysis.path).name: frame.duplicate_group for frame in selection.frames}

    original, rotated = analyses["original.jpg"], analyses["rotated.jpg"]

    assert (rotated.width, rotated.height) == (original.width, original.height)
    assert rotated.subject_face.box == pytest.approx(original.subject_face.box, abs=0.03 * original.width)
    assert groups["rotated.jpg"] == groups["original.jpg"] == groups["blurred.jpg"]


def test_good_originals_have_no_quality_problems(session):
    name, analyses, _ = session
    if name == "astronaut":
        pytest.skip("the 512-pixel astronaut is rightly too small for a print headshot")

    for twin in ("original.jpg", "rotated.jpg"):
        assert QUALITY_CODES & set(analyses[twin].codes) == set(), twin


def test_each_rank_is_explained(session):
    _, _, selection = session

    sentences = [frame.explain("en") for frame in selection.frames]

    assert sentences[0].startswith("Best frame of the session")
    assert all(sentences)
    assert [frame.rank for frame in selection.frames] == list(range(1, len(sentences) + 1))


# ---------------------------------------------------------------------------------------------------------------
# The shared test photos and frames without a face


@pytest.fixture(scope="module")
def shared_findings(shared_photos, tmp_path_factory):
    folder = tmp_path_factory.mktemp("landscape")
    rng = np.random.default_rng(5)
    landscape = np.clip(
        cv2.resize(rng.uniform(40, 220, (12, 18, 3)), (900, 600), interpolation=cv2.INTER_CUBIC)
        + rng.normal(0, 4, (600, 900, 3)),
        0,
        255,
    ).astype(np.uint8)
    no_face = folder / "landscape.jpg"
    Image.fromarray(landscape).save(no_face, quality=92)
    names = [
        "obama_partial_face.jpg", "obama_partial_face2.jpg", "obama-240p.jpg", "two_people.jpg",
        "obama_and_biden.jpg", "biden2.jpg",
    ]
    analyses = analyze_files([shared_photos / name for name in names] + [no_face])
    return {Path(analysis.path).name: analysis for analysis in analyses}


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("obama_partial_face.jpg", "face_cut_by_edge"),
        ("obama_partial_face2.jpg", "face_cut_by_edge"),
        ("obama-240p.jpg", "low_resolution"),
        ("two_people.jpg", "multiple_faces"),
        ("obama_and_biden.jpg", "multiple_faces"),
        ("landscape.jpg", "no_face"),
    ],
)
def test_shared_photo_findings(shared_findings, name, code):
    assert code in shared_findings[name].codes


@pytest.mark.parametrize("name", ["two_people.jpg", "obama_and_biden.jpg"])
def test_group_photo_names_the_subject(shared_findings, name):
    analysis = shared_findings[name]

    message = next(reason for reason in analysis.reasons if reason.code == "multiple_faces").message("en")

    assert len(analysis.faces) >= 2
    assert analysis.subject is not None
    assert "the subject is taken to be the" in message
    assert "from the left" in message


def test_frame_without_face_ranks_last(shared_findings):
    selection = select_frames(list(shared_findings.values()), top=3)

    assert Path(selection.frames[-1].analysis.path).name == "landscape.jpg"
    assert not selection.frames[-1].selected
    assert len(selection.chosen) == 3


def test_top_frames_are_different(astronaut_rgb):
    from pipeline.analysis import analyze_image

    sharp = analyze_image(astronaut_rgb, path="sharp.png")
    soft = analyze_image(cv2.GaussianBlur(astronaut_rgb, (0, 0), 1.5), path="soft.png")
    mirrored = analyze_image(np.ascontiguousarray(cv2.GaussianBlur(astronaut_rgb, (0, 0), 2.5)[:, ::-1]), path="mirrored.png")

    selection = select_frames([soft, sharp, mirrored], top=2)

    names = [Path(frame.analysis.path).name for frame in selection.chosen]
    assert names == ["sharp.png", "mirrored.png"]
    assert selection.frames[2].explanation == "duplicate"
    assert "sharp.png" in selection.frames[2].explain("en")


def test_select_rejects_top_below_one():
    with pytest.raises(ValueError, match="top must be at least 1"):
        select_frames([], top=0)


# ---------------------------------------------------------------------------------------------------------------
# The command line


@pytest.fixture(scope="module")
def cli_frames(tmp_path_factory, astronaut_rgb) -> list[str]:
    folder = tmp_path_factory.mktemp("cli")
    Image.fromarray(astronaut_rgb).save(folder / "portrait.jpg", quality=95)
    Image.fromarray(cv2.GaussianBlur(astronaut_rgb, (0, 0), 2.0)).save(folder / "soft.jpg", quality=95)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return [str(folder / name) for name in ("portrait.jpg", "soft.jpg", "broken.jpg")]


def test_analyze_json_output(cli_frames, capsys):
    exit_code = headshot(["analyze", "--json", *cli_frames])

    document = json.loads(capsys.readouterr().out)
    frames = {Path(frame["file"]).name: frame for frame in document["frames"]}
    assert exit_code == 0
    assert set(frames) == {"portrait.jpg", "soft.jpg", "broken.jpg"}
    assert frames["portrait.jpg"]["score"] > frames["soft.jpg"]["score"]
    assert {"code", "message"} <= set(frames["soft.jpg"]["reasons"][0])
    assert "blur" in [reason["code"] for reason in frames["soft.jpg"]["reasons"]]
    assert frames["portrait.jpg"]["faces"][0]["box"]
    assert "face_detail_ratio" in frames["portrait.jpg"]["metrics"]
    assert frames["broken.jpg"]["score"] == 0
    assert frames["broken.jpg"]["error"]["code"]


def test_select_json_in_dutch(cli_frames, capsys, monkeypatch):
    monkeypatch.setenv("HEADSHOT_LANG", "nl")

    exit_code = headshot(["select", "--json", "--top", "1", *cli_frames])

    document = json.loads(capsys.readouterr().out)
    first = document["frames"][0]
    assert exit_code == 0
    assert Path(first["file"]).name == "portrait.jpg"
    assert first["rank"] == 1
    assert first["selected"] is True
    assert {frame["duplicate_group"] for frame in document["frames"][:2]} == {1}
    assert first["rank_reason"].startswith("Beste opname")
    soft = document["frames"][1]
    assert any(reason["message"].startswith("Het gezicht is niet scherp") for reason in soft["reasons"])


def test_select_table_in_dutch(cli_frames, capsys, monkeypatch):
    monkeypatch.setenv("HEADSHOT_LANG", "nl")

    exit_code = headshot(["select", *cli_frames])

    output = capsys.readouterr().out
    assert exit_code == 0
    assert "plaats" in output
    assert "Beste opname van de shoot" in output


@pytest.mark.parametrize("command", ["analyze", "select"])
def test_batch_with_no_readable_file_exits_1(cli_frames, tmp_path, capsys, command):
    exit_code = headshot([command, cli_frames[2], str(tmp_path / "missing.jpg")])

    output = capsys.readouterr().out
    assert exit_code == 1
    assert "broken.jpg" in output
    assert "missing.jpg was not found" in output
    assert "Error file_not_found: " in output


@pytest.mark.parametrize("arguments", [["select"], ["select", "--top", "0", "x.jpg"], ["analyze"]])
def test_usage_errors_exit_2(arguments, capsys):
    with pytest.raises(SystemExit) as stopped:
        headshot(arguments)

    assert stopped.value.code == 2
