"""Pick the best frames of a session: rank by score, keep near-duplicates apart so the top N are different frames,
and say in a sentence why each frame ranks where it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .analysis import FrameAnalysis
from .analysis_measures import hash_distance
from .i18n import N_, gettext_for

# Perceptual-hash distance (of 63 bits) up to which two frames count as near-duplicates. Blur, exposure changes
# of up to 2 stops, JPEG quality 10 and resizing move a frame's hash by 0–4 bits; different frames of one
# session (another pose or framing) differ by 18 or more.
DUPLICATE_DISTANCE = 10

PROBLEM_LABELS = {
    "blur": N_("a blurred face"),
    "underexposed": N_("a face that is too dark"),
    "overexposed": N_("a face that is too bright"),
    "eyes_closed": N_("closed eyes"),
    "mouth_open": N_("an open mouth"),
    "head_tilted": N_("a tilted head"),
    "head_turned": N_("a head turned away"),
    "face_cut_by_edge": N_("a face cut off by the frame edge"),
    "head_top_cut": N_("the top of the head cut off"),
    "low_resolution": N_("a face too small in pixels"),
    "compression_artifacts": N_("JPEG compression blocks"),
    "noisy": N_("noise"),
    "color_cast": N_("a colour cast"),
    "busy_background": N_("a busy background"),
    "multiple_faces": N_("more than one face"),
}

EXPLANATIONS = {
    "best": N_("Best frame of the session, with a score of {score}."),
    "below_problem": N_("Score {score}, below {above} ({above_score}), mainly because of {problem}."),
    "below_sharpness": N_("Score {score}, just below {above} ({above_score}): the face is a little less sharp."),
    "below": N_("Score {score}, below {above} ({above_score})."),
    "duplicate": N_(
        "Nearly the same frame as {best} (rank {best_rank}), which scores {best_score}; kept as a spare after "
        "the different frames."
    ),
    "no_face": N_("No face was found, so this frame ranks after every frame with a face."),
    "unreadable": N_("The file could not be read, so it ranks last."),
}


@dataclass
class RankedFrame:
    """One frame's place in the selection and the sentence that explains it."""

    analysis: FrameAnalysis
    rank: int  # 1 = best
    duplicate_group: int  # frames that share a group are near-duplicates; groups are numbered from 1
    selected: bool
    explanation: str  # key of EXPLANATIONS
    explanation_params: dict = field(default_factory=dict)

    def explain(self, language: str | None = None) -> str:
        _ = gettext_for(language)
        params = dict(self.explanation_params)
        if "problem" in params:
            params["problem"] = _(PROBLEM_LABELS[params["problem"]])
        return _(EXPLANATIONS[self.explanation]).format(**params)

    def to_dict(self, language: str | None = None, landmarks: bool = False) -> dict:
        data = self.analysis.to_dict(language, landmarks=landmarks)
        data.update(
            rank=self.rank,
            duplicate_group=self.duplicate_group,
            selected=self.selected,
            rank_reason=self.explain(language),
        )
        return data


@dataclass
class Selection:
    """The frames of one session in rank order; `chosen` are the top N, all different frames where possible."""

    frames: list[RankedFrame]
    top: int | None = None

    @property
    def chosen(self) -> list[RankedFrame]:
        return [frame for frame in self.frames if frame.selected]

    def to_dict(self, language: str | None = None, landmarks: bool = False) -> dict:
        return {"top": self.top, "frames": [frame.to_dict(language, landmarks) for frame in self.frames]}


def select_frames(analyses: list[FrameAnalysis], top: int | None = None) -> Selection:
    """Rank a session's frames: the best of each near-duplicate group first, then the spares, then frames without
    a face, then unreadable files. `top` marks that many frames as selected (all frames with a face when None).
    """
    if top is not None and top < 1:
        raise ValueError(f"top must be at least 1, got {top}")

    # 1. Group near-duplicates (single linkage on the perceptual hash).
    groups = _duplicate_groups(analyses)

    # 2. Order: group leaders by score, then the other members, then faceless frames, then unreadable files.
    def quality(index: int) -> tuple:
        analysis = analyses[index]
        detail = analysis.metrics.get("face_detail_ratio", 0.0)
        return (-analysis.score, -detail, index)

    with_face = [index for index, analysis in enumerate(analyses) if analysis.error is None and analysis.has_face]
    leaders: dict[int, int] = {}
    for index in sorted(with_face, key=quality):
        leaders.setdefault(groups[index], index)
    leader_set = set(leaders.values())
    spares = [index for index in sorted(with_face, key=quality) if index not in leader_set]
    faceless = sorted(
        (index for index, analysis in enumerate(analyses) if analysis.error is None and not analysis.has_face),
        key=quality,
    )
    unreadable = [index for index, analysis in enumerate(analyses) if analysis.error is not None]
    order = sorted(leader_set, key=quality) + spares + faceless + unreadable

    # 3. Number the groups in rank order and explain each place.
    group_numbers: dict[int, int] = {}
    for index in order:
        group_numbers.setdefault(groups[index], len(group_numbers) + 1)
    limit = len(with_face) if top is None else top
    ranked: list[RankedFrame] = []
    rank_of: dict[int, int] = {}
    for position, index in enumerate(order):
        rank_of[index] = position + 1
        key, params = _explain(index, position, order, analyses, groups, leaders, rank_of)
        ranked.append(
            RankedFrame(
                analysis=analyses[index],
                rank=position + 1,
                duplicate_group=group_numbers[groups[index]],
                selected=position < limit and index in with_face,
                explanation=key,
                explanation_params=params,
            )
        )
    return Selection(frames=ranked, top=top)


def _duplicate_groups(analyses: list[FrameAnalysis]) -> list[int]:
    parent = list(range(len(analyses)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for first in range(len(analyses)):
        for second in range(first + 1, len(analyses)):
            hashes = analyses[first].fingerprint, analyses[second].fingerprint
            if None in hashes:
                continue
            if hash_distance(*hashes) <= DUPLICATE_DISTANCE:
                parent[root(second)] = root(first)
    return [root(index) for index in range(len(analyses))]


def _explain(index, position, order, analyses, groups, leaders, rank_of) -> tuple[str, dict]:
    analysis = analyses[index]
    score = _score_text(analysis.score)
    if analysis.error is not None:
        return "unreadable", {}
    if not analysis.has_face:
        return "no_face", {}
    if position == 0:
        return "best", {"score": score}

    leader = leaders[groups[index]]
    if leader != index:
        best = analyses[leader]
        return "duplicate", {"best": _name(best), "best_rank": rank_of[leader], "best_score": _score_text(best.score)}

    above = analyses[order[position - 1]]
    params = {"score": score, "above": _name(above), "above_score": _score_text(above.score)}
    above_codes = set(above.codes)
    problems = [
        reason for reason in analysis.reasons if reason.penalty > 0 and reason.code in PROBLEM_LABELS
        and reason.code not in above_codes
    ]
    if problems:
        return "below_problem", {**params, "problem": problems[0].code}
    if analysis.metrics.get("face_detail_ratio", 0.0) < above.metrics.get("face_detail_ratio", 0.0):
        return "below_sharpness", params
    return "below", params


def _name(analysis: FrameAnalysis) -> str:
    return Path(analysis.path).name if analysis.path else "-"


def _score_text(score: float) -> str:
    return f"{score:.0f}"
