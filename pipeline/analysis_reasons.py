"""Turn a frame's measurements into a retoucher's verdict: the reasons (problems and strengths) and a score 0..100.

Each threshold below is stated with why it sits there; the measurements themselves come from
`pipeline.analysis_measures`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .i18n import N_, current_language, gettext_for

# Face detail ratio (see analysis_measures.octave_detail_ratio): sharp faces measure 0.5–0.7. A face blurred by
# a Gaussian of about 1 pixel at 80 pixels between the eyes (a visibly soft print) measures 0.36 or less.
DETAIL_BLURRED = 0.42
DETAIL_CRISP = 0.55
DETAIL_SCALE = (0.30, 0.60)  # mapped to sharpness 0..100

# A print or LinkedIn headshot needs a square crop of at least 400 px with the face about half its width, so a
# face at least 200 px wide; eyes sit about 0.37 face widths apart, hence about 70 px between the eye centres.
MIN_EYE_DISTANCE = 70.0
MIN_FACE_WIDTH = 190.0  # used when the mesh is missing and only the detector's box is known

# Light. A frame 2 stops too dark has nothing above 25 % of white; a correctly exposed portrait nearly always has
# a collar, catchlight or backdrop far brighter, and skin of any tone lies between L* 25 and 80.
HIGHLIGHT_DARK = 0.35  # linear luminance of the frame's and the face's brightest 1 %
SKIN_DARK_WITHOUT_HIGHLIGHTS = 55.0  # L*: dark skin with no bright point anywhere is underexposure
SKIN_TOO_DARK = 20.0  # L*: below the darkest skin tones even with highlights elsewhere
SKIN_TOO_BRIGHT = 86.0  # L*: above the palest skin tones
# Share of the face burnt out to white; specular highlights stay under about 3 %.
# NOTE: a dark complexion exposed 1.5 stops over reads as a lighter, correctly exposed skin unless its
# highlights clip, so overexposure of dark skin without clipped highlights is not found.
FACE_CLIPPED_PCT = 8.0
GOOD_LIGHT_CLIPPED_PCT = 2.0

# Pose: a slight tilt or turn flatters; beyond these the frame reads as a profile or a snapshot.
MAX_ROLL = 15.0
MAX_YAW = 25.0
MAX_PITCH = 25.0

# Eye aspect ratio: open eyes measure 0.18–0.35 in the mesh, closed ones under 0.1; the mean of both eyes
# tolerates a squint, the single-eye limit catches a wink.
EYES_CLOSED_MEAN = 0.13
ONE_EYE_CLOSED = 0.08

# Mouth: an inner-lip gap over 30 % of the mouth width without raised corners looks mid-word.
MOUTH_OPEN = 0.30
SMILE_CORNERS = 0.06

# JPEG grid peaks (see analysis_measures.blockiness): 1.0–2.0 for camera files and exports at quality 85 and up,
# 4 and more at quality 10–30, where blocks show in skin and backdrop.
BLOCKINESS_LIMIT = 3.5

# Noise sigma in 8-bit levels on the skin at preview scale; the measure reads about 0.7 of a Gaussian's sigma.
NOISE_LIMIT = 4.5

# Colour cast: mean a*/b* distance from neutral of the frame's most neutral tenth; well-balanced frames stay
# under 3, a cast a client notices starts at about 6.
CAST_LIMIT = 6.0

# Share of backdrop pixels on an edge at 512 px: plain and defocused backdrops stay under 0.03, flags, shelves and
# crowds reach 0.06 and more.
CLUTTER_LIMIT = 0.06

# A second face counts when it is at least half the subject's size (eye distance); smaller ones are passers-by.
SECOND_FACE_SIZE = 0.5


@dataclass
class Reason:
    """One finding about a frame: a stable code, a sentence in the reader's language, and what it cost."""

    code: str
    template: str  # English sentence with {fields}; translated when read
    params: dict = field(default_factory=dict)
    penalty: float = 0.0  # points taken off the score; 0 for strengths
    value: float | None = None  # the measured value the finding rests on
    severity: str = "problem"  # "problem", "warning" or "good"

    def message(self, language: str | None = None) -> str:
        decimal_comma = (language or current_language()) == "nl"
        fields = {
            name: (_decimal_text(value, decimal_comma) if isinstance(value, float) else value)
            for name, value in self.params.items()
        }
        return gettext_for(language)(self.template).format(**fields)

    def to_dict(self, language: str | None = None) -> dict:
        return {
            "code": self.code,
            "message": self.message(language),
            "severity": self.severity,
            "penalty": round(self.penalty, 1),
            "value": None if self.value is None else round(float(self.value), 3),
        }


MESSAGES = {
    "no_face": N_("No face was found. Choose a frame in which the face is visible and turned towards the camera."),
    "blur": N_(
        "The face is not sharp (sharpness {sharpness} of 100). Focus on the eyes and use a faster shutter speed, "
        "or choose a sharper frame."
    ),
    "underexposed": N_(
        "The face is too dark (skin lightness {lightness} of 100). Expose about {stops} stops brighter or add "
        "light on the face."
    ),
    "overexposed": N_(
        "The face is too bright: {clipped} % of it is burnt out to white. Expose about {stops} stops darker or "
        "soften the light."
    ),
    "eyes_closed": N_("The eyes are closed or nearly closed. Choose a frame in which the eyes are open."),
    "one_eye_closed": N_("One eye is closed or nearly closed. Choose a frame in which both eyes are open."),
    "head_tilted": N_(
        "The head is tilted {degrees}° sideways. Straighten it when cropping, or ask the subject to level "
        "their head."
    ),
    "head_turned_side": N_(
        "The head is turned {degrees}° away from the camera. For a classic headshot, ask the subject to turn "
        "their face towards the lens."
    ),
    "head_turned_up_down": N_(
        "The head is tipped {degrees}° up or down. Ask the subject to keep the chin level with the lens."
    ),
    "face_cut_left": N_("The face is cut off by the left edge of the frame. Choose a frame with the whole face in it."),
    "face_cut_right": N_("The face is cut off by the right edge of the frame. Choose a frame with the whole face in it."),
    "face_cut_top": N_("The face is cut off by the top edge of the frame. Choose a frame with the whole face in it."),
    "face_cut_bottom": N_(
        "The face is cut off by the bottom edge of the frame. Choose a frame with the whole face in it."
    ),
    "head_top_cut": N_(
        "The top of the head is cut off by the frame. Leave room above the hair so every crop can be made."
    ),
    "low_resolution": N_(
        "The face is too small for a print or LinkedIn headshot: {eyes} px between the eyes, at least {minimum} px "
        "are needed. Move closer or use a longer lens."
    ),
    "compression_artifacts": N_(
        "The photo shows JPEG compression blocks (strength {blockiness}). Use the camera original or a "
        "high-quality export."
    ),
    "noisy": N_(
        "The photo is noisy ({noise} levels in smooth areas). Use a lower ISO or more light; noise reduction "
        "would soften the skin."
    ),
    "color_cast_yellow": N_(
        "The colours have a warm, yellow cast (b* {b}). Set the white balance with a grey card or in the raw "
        "converter."
    ),
    "color_cast_blue": N_(
        "The colours have a cool, blue cast (b* {b}). Set the white balance with a grey card or in the raw "
        "converter."
    ),
    "color_cast_magenta": N_(
        "The colours have a magenta cast (a* {a}). Set the white balance with a grey card or in the raw converter."
    ),
    "color_cast_green": N_(
        "The colours have a green cast (a* {a}). Set the white balance with a grey card or in the raw converter."
    ),
    "black_bars": N_(
        "The frame has black bars ({share} % of it), as a video still has. Crops are planned inside them; for more "
        "room around the head, export the picture without the bars."
    ),
    "busy_background": N_(
        "The background is busy ({clutter} % of it is edges). Use a plain backdrop or a wider aperture, or let "
        "Headshot Studio replace the backdrop."
    ),
    "multiple_faces_largest": N_(
        "{count} faces in the frame; the subject is taken to be the largest, number {position} from the left. "
        "Crop the others out or choose a frame with one person."
    ),
    "multiple_faces_most_central": N_(
        "{count} faces in the frame; the subject is taken to be the most central one, number {position} from the "
        "left. Crop the others out or choose a frame with one person."
    ),
    "multiple_faces_sharpest": N_(
        "{count} faces in the frame; the subject is taken to be the sharpest one, number {position} from the left. "
        "Crop the others out or choose a frame with one person."
    ),
    "mouth_open": N_("The mouth is open as if mid-word. Choose a frame with the mouth closed or smiling."),
    "sharp_face": N_("The face is sharp (sharpness {sharpness} of 100)."),
    "good_light": N_("The face is well exposed, with no burnt-out highlights."),
}


def _severity(value: float, start: float, full: float) -> float:
    """Return 0 at `start`, 1 at `full` (either direction), clipped."""
    if full == start:
        return 1.0
    return min(1.0, max(0.0, (value - start) / (full - start)))


def sharpness_score(detail_ratio: float) -> float:
    low, high = DETAIL_SCALE
    return 100.0 * min(1.0, max(0.0, (detail_ratio - low) / (high - low)))


def judge_frame(metrics: dict, subject_choice: str | None, subject_position: int | None) -> list[Reason]:
    """Return the reasons for one frame, worst first, from its metrics (see analysis.analyze_image)."""
    reasons: list[Reason] = []

    def add(code, message_key, penalty, value, severity="problem", **params):
        reasons.append(Reason(code, MESSAGES[message_key], params, penalty, value, severity))

    # 1. No face: nothing else matters for a headshot.
    if not metrics.get("face_count"):
        add("no_face", "no_face", 100.0, 0)
        return reasons

    # 2. Focus on the face.
    detail = metrics.get("face_detail_ratio")
    if detail is not None:
        sharpness = round(sharpness_score(detail))
        if detail < DETAIL_BLURRED:
            add("blur", "blur", 25 + 25 * _severity(detail, DETAIL_BLURRED, DETAIL_SCALE[0]), detail, sharpness=sharpness)
        elif detail >= DETAIL_CRISP:
            add("sharp_face", "sharp_face", 0.0, detail, "good", sharpness=sharpness)

    # 3. Light on the face.
    skin = metrics.get("skin_lightness")
    highlight = max(metrics.get("frame_highlight", 1.0), metrics.get("face_highlight", 0.0))
    clipped = metrics.get("face_clipped_pct", 0.0)
    exposure_problem = False
    if skin is not None and not math.isnan(skin):
        no_highlights = highlight < HIGHLIGHT_DARK and skin < SKIN_DARK_WITHOUT_HIGHLIGHTS
        if no_highlights or skin < SKIN_TOO_DARK:
            stops = max(0.5, math.log2(0.85 / max(highlight, 1e-3))) if no_highlights else 1.0
            add("underexposed", "underexposed", 25 + 15 * _severity(stops, 1.0, 3.0), skin, lightness=round(skin), stops=_stops(stops))
            exposure_problem = True
        elif clipped > FACE_CLIPPED_PCT or skin > SKIN_TOO_BRIGHT:
            stops = 0.5 + 1.5 * _severity(clipped, FACE_CLIPPED_PCT, 80.0)
            add("overexposed", "overexposed", 25 + 15 * _severity(clipped, FACE_CLIPPED_PCT, 60.0), clipped, clipped=round(clipped), stops=_stops(stops))
            exposure_problem = True
    if not exposure_problem and skin is not None and clipped <= GOOD_LIGHT_CLIPPED_PCT:
        add("good_light", "good_light", 0.0, skin, "good")

    # 4. Eyes and mouth.
    eyes = metrics.get("eye_openness_right"), metrics.get("eye_openness_left")
    if None not in eyes:
        if (eyes[0] + eyes[1]) / 2 < EYES_CLOSED_MEAN:
            add("eyes_closed", "eyes_closed", 35.0, min(eyes))
        elif min(eyes) < ONE_EYE_CLOSED:
            add("eyes_closed", "one_eye_closed", 20.0, min(eyes))
    mouth = metrics.get("mouth_open")
    if mouth is not None and mouth > MOUTH_OPEN and metrics.get("smile", 0.0) < SMILE_CORNERS:
        add("mouth_open", "mouth_open", 6.0, mouth, "warning")

    # 5. Pose.
    roll, yaw, pitch = metrics.get("roll"), metrics.get("yaw"), metrics.get("pitch")
    if roll is not None and abs(roll) > MAX_ROLL:
        add("head_tilted", "head_tilted", 8.0, roll, "warning", degrees=round(abs(roll)))
    if yaw is not None and abs(yaw) > MAX_YAW:
        add("head_turned", "head_turned_side", 12.0, yaw, "warning", degrees=round(abs(yaw)))
    elif pitch is not None and abs(pitch) > MAX_PITCH:
        add("head_turned", "head_turned_up_down", 12.0, pitch, "warning", degrees=round(abs(pitch)))

    # 6. Framing and resolution.
    for edge in metrics.get("face_cut_edges", []):
        add("face_cut_by_edge", f"face_cut_{edge}", 40.0, 1.0)
        break
    if not metrics.get("face_cut_edges") and metrics.get("head_top_cut"):
        add("head_top_cut", "head_top_cut", 10.0, 1.0, "warning")
    eye_distance = metrics.get("eye_distance_px")
    if eye_distance is not None:
        if eye_distance < MIN_EYE_DISTANCE:
            add(
                "low_resolution", "low_resolution", 20 + 20 * _severity(eye_distance, MIN_EYE_DISTANCE, 20.0),
                eye_distance, eyes=round(eye_distance), minimum=round(MIN_EYE_DISTANCE),
            )
    elif metrics.get("face_width_px", 1e9) < MIN_FACE_WIDTH:
        width = metrics["face_width_px"]
        add(
            "low_resolution", "low_resolution", 20 + 20 * _severity(width, MIN_FACE_WIDTH, 55.0),
            width, eyes=round(width * 0.37), minimum=round(MIN_EYE_DISTANCE),
        )

    # 7. File quality: compression, noise, colour.
    blocks = metrics.get("blockiness")
    if blocks is not None and blocks > BLOCKINESS_LIMIT:
        add("compression_artifacts", "compression_artifacts", 20 + 10 * _severity(blocks, BLOCKINESS_LIMIT, 10.0), blocks, blockiness=round(blocks, 1))
    noise = metrics.get("noise")
    if noise is not None and noise > NOISE_LIMIT:
        add("noisy", "noisy", 10 + 10 * _severity(noise, NOISE_LIMIT, 12.0), noise, "warning", noise=round(noise))
    cast_a, cast_b = metrics.get("color_cast_a", 0.0), metrics.get("color_cast_b", 0.0)
    if math.hypot(cast_a, cast_b) > CAST_LIMIT:
        if abs(cast_b) >= abs(cast_a):
            key = "color_cast_yellow" if cast_b > 0 else "color_cast_blue"
        else:
            key = "color_cast_magenta" if cast_a > 0 else "color_cast_green"
        add("color_cast", key, 8.0, math.hypot(cast_a, cast_b), "warning", a=round(cast_a), b=round(cast_b))

    # 8. Backdrop and other people.
    clutter = metrics.get("backdrop_clutter")
    if clutter is not None and clutter > CLUTTER_LIMIT:
        add("busy_background", "busy_background", 5.0, clutter, "warning", clutter=round(100 * clutter))
    bars = metrics.get("black_bars_pct", 0.0)
    if bars > 0:
        add("black_bars", "black_bars", 2.0, bars, "warning", share=round(bars))
    if metrics.get("face_count", 0) > 1 and subject_choice:
        add(
            "multiple_faces", f"multiple_faces_{subject_choice}", 10.0, metrics["face_count"], "warning",
            count=metrics["face_count"], position=subject_position,
        )

    reasons.sort(key=lambda reason: (reason.severity == "good", -reason.penalty))
    return reasons


def frame_score(reasons: list[Reason], detail_ratio: float | None) -> float:
    """Return 0..100: 90 for a flawless frame plus up to 10 for crispness, less each reason's penalty."""
    if any(reason.code == "no_face" for reason in reasons):
        return 0.0
    crispness = 0.0 if detail_ratio is None else sharpness_score(detail_ratio) / 10.0
    score = 90.0 + crispness - sum(reason.penalty for reason in reasons)
    return round(min(100.0, max(0.0, score)), 1)


def _stops(stops: float) -> float:
    return max(0.5, round(stops * 2) / 2)


def _decimal_text(value: float, decimal_comma: bool) -> str:
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") if decimal_comma else text
