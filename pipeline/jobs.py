"""One job from request to finished headshots, with the events a client watches.

`run_job` is what every host calls: the command line in-process, the daemon's
worker, the hot folder through the daemon. It reports progress through
`on_event` and checks `should_stop` between stages and inside long ones.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .request import JobRequest


class EventKind(str, enum.Enum):
    stage_started = "stage_started"
    progress = "progress"
    frame_scored = "frame_scored"
    variant_ready = "variant_ready"


class Stage(str, enum.Enum):
    reading = "reading"
    analysing = "analysing"
    selecting = "selecting"
    retouching = "retouching"
    matting = "matting"
    relighting = "relighting"
    compositing = "compositing"
    writing = "writing"


@dataclass
class VariantResult:
    """One finished headshot file and the exact recipe that made it."""

    variant_id: str  # stable within the job, e.g. "obama_natural_white_natural_square"
    path: Path
    frame: str  # the source frame's path
    recipe: dict  # retouch, makeup, backdrop, light, crop, format, bit_depth and every strength used
    width: int
    height: int
    score: float  # the source frame's score 0..100


@dataclass
class JobEvent:
    kind: EventKind
    stage: Stage | None = None
    fraction: float | None = None  # 0..1, or None when progress cannot be known
    frame: str | None = None
    score: float | None = None
    reasons: list[dict] = field(default_factory=list)  # [{"code": ..., "message": ...}]
    variant: VariantResult | None = None


@dataclass
class JobResult:
    variants: list[VariantResult]
    report_path: Path
    contact_sheet_path: Path
    report: dict


class JobCanceled(Exception):
    """Raised inside `run_job` when `should_stop` returned True; nothing half-written is left behind."""


EventCallback = Callable[[JobEvent], None]
StopCheck = Callable[[], bool]
