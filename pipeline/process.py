"""Turn the best frames of a session into finished headshot variants: `run_job` and the stages it runs.

Each selected frame is decoded once. Its crops are planned on the analysed face,
and only the part of the frame the crops keep is cut out, at the resolution the
largest output needs. The matte and the retouch run once per frame on that
region. Each variant then only relights (once per light), composites (once per
backdrop), crops and encodes, and the encodes run in a thread pool.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import tempfile
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from .crops import PRINT_DPI
from .device import to_pixels
from .errors import HeadshotError, register_messages
from . import faces as faces_module
from .faces import Face
from .i18n import N_, format_decimal, gettext_for
from .jobs import EventCallback, EventKind, JobCanceled, JobEvent, JobRequest, JobResult, Stage, StopCheck, VariantResult
from .request import OUTPUT_FORMATS
from .styles import display_name, style_names

log = logging.getLogger(__name__)

REPORT_NAME = "report.json"
CONTACT_SHEET_NAME = "contact-sheet.jpg"
PASSPORT_CROPS = ("passport", "us-passport")
AS_SHOT = "original"  # the backdrop, light or crop name that keeps the frame as it was shot

# Around the union of the crops, so resampling at a crop's edge still reads real pixels.
REGION_MARGIN = 0.02  # of the region's longer side
REGION_MARGIN_MIN_PX = 8
FULL_SIZE_SCALE = 0.9  # a working scale at or above this is rounded up to 1
# The maximum long side of each crop as delivered; frames with less detail keep their own resolution.
# Square and portrait (2048×2048, 2048×2560) are more than profile pages and social feeds display, the
# banner fills a QHD screen's width (2560×1440), and classic prints 8×12 in at 300 dpi (2400×3600).
# Passport sizes are fixed by their rules, and the as-shot crop keeps every pixel of the frame.
MAX_OUTPUT_LONG_SIDE = {"square": 2048, "portrait": 2560, "banner": 2560, "classic": 3600}
DCT_REDUCTIONS = (8, 4, 2)  # the JPEG decoder's own scale factors, 1/8 to 1/2
PLANNING_LONG_SIDE = 512  # the small copy whose matte finds the top of the hair for crop planning
ENCODE_WORKERS = max(1, min(4, os.cpu_count() or 1))
# A one-frame job decodes its frame in full while the frame is analysed, up to this many pixels. A larger frame
# waits for crop planning, since a reduced decode may do.
EARLY_DECODE_MAX_PIXELS = 50_000_000
EIGHT_BIT_FORMATS = ("jpeg", "webp", "heic")
_SUFFIX_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".tif": "tiff", ".tiff": "tiff", ".webp": "webp", ".heic": "heic", ".heif": "heic"}

# Shares of the job's progress fraction.
ANALYSIS_SHARE = 0.15
RENDER_SHARE = 0.80

register_messages(
    {
        "frame_without_face": N_("{file} shows no face, so no headshot can be made from it. Choose a frame in which the face is visible."),
        "bit_depth_unsupported": N_(
            "{format} files hold 8 bits per channel, so a bit depth of 16 is not possible. "
            "Choose PNG or TIFF as the format, or leave the bit depth as it is."
        ),
    }
)

_PASSPORT_RULE = N_("Passport rules: a plain white backdrop and no retouching.")


@dataclass(frozen=True)
class VariantSpec:
    """One cell of the variant matrix, after the passport rules are applied."""

    backdrop: str
    light: str
    crop: str
    retouch: str
    overridden: tuple[str, ...] = ()  # recipe parts the crop's rules replaced

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.retouch, self.light, self.backdrop, self.crop


def plan_variants(request: JobRequest) -> list[VariantSpec]:
    """Expand backdrops × lights × crops into variants; each passport crop becomes one white, unlit, unretouched variant."""
    variants: list[VariantSpec] = []
    seen: set[tuple] = set()
    for backdrop in request.backdrops:
        for light in request.lights:
            for crop in request.crops:
                variant = VariantSpec(backdrop, light, crop, request.retouch)
                if crop in PASSPORT_CROPS:
                    # ICAO passport rules require even light, a plain white backdrop and an unretouched face.
                    forced = {"backdrop": "white", "light": "original", "retouch": "off"}
                    requested = {"backdrop": backdrop, "light": light, "retouch": request.retouch}
                    replaced = tuple(part for part in forced if requested[part] != forced[part])
                    variant = VariantSpec("white", "original", crop, "off", replaced)
                if variant.key not in seen:
                    seen.add(variant.key)
                    variants.append(variant)
    return variants


def validate_request(request: JobRequest) -> None:
    """Check every option of a request before any work starts; raise `invalid_option` naming the allowed values."""
    # 1. Presets and style names.
    _check_choice("--retouch", request.retouch, style_names("retouch"))
    _check_choice("--makeup", request.makeup, style_names("makeup"))
    for option, names, kind in (
        ("--backdrop", request.backdrops, "backdrop"),
        ("--light", request.lights, "light"),
        ("--crop", request.crops, "crop"),
    ):
        if not names:
            _check_choice(option, "", style_names(kind))
        for name in names:
            if kind == "backdrop":
                _check_backdrop(name)
            else:
                _check_choice(option, name, style_names(kind))

    # 2. Output settings.
    _check_choice("--format", request.output_format, OUTPUT_FORMATS)
    _check_choice("--bit-depth", str(request.bit_depth), ("8", "16") if request.bit_depth else ("0", "8", "16"))
    if not isinstance(request.top, int) or request.top < 1:
        raise HeadshotError("invalid_option", None, f"top={request.top!r}", option="--top", value=request.top, allowed="≥ 1")
    if not isinstance(request.jpeg_quality, int) or not 1 <= request.jpeg_quality <= 100:
        raise HeadshotError(
            "invalid_option", None, f"jpeg_quality={request.jpeg_quality!r}", option="--jpeg-quality", value=request.jpeg_quality, allowed="1–100"
        )
    _check_choice("--language", request.language, ("", "en", "nl"))
    if request.output_format in EIGHT_BIT_FORMATS and request.bit_depth == 16:
        raise HeadshotError("bit_depth_unsupported", None, f"bit_depth=16 with {request.output_format} output", format=request.output_format.upper())

    # 3. The frames themselves: present and regular files.
    if not request.frames:
        raise HeadshotError("invalid_option", None, "no frames", option="FILE", value="-", allowed="JPEG, PNG, TIFF, WebP, HEIC")
    for frame in request.frames:
        path = Path(frame)
        if not path.exists():
            raise HeadshotError("file_not_found", frame, "frame does not exist")
        if not path.is_file():
            raise HeadshotError("not_a_file", frame, "frame is not a regular file")
        own_format = _SUFFIX_FORMATS.get(path.suffix.lower())
        if request.output_format == "same" and request.bit_depth == 16 and own_format in EIGHT_BIT_FORMATS:
            raise HeadshotError("bit_depth_unsupported", frame, f"bit_depth=16 with {own_format} output", format=own_format.upper())


def run_job(
    request: JobRequest,
    output_dir: str | os.PathLike,
    on_event: EventCallback | None = None,
    should_stop: StopCheck | None = None,
    job_id: str | None = None,
) -> JobResult:
    """Analyse and select the frames, write every variant of each selected frame, the contact sheet and report.json.

    Each file appears in `output_dir` atomically; report.json is written last.
    Raises `HeadshotError` for bad options or unusable frames and `JobCanceled`
    when `should_stop` returns True; files finished before that stay.
    """
    from .memory import reuse_freed_memory

    validate_request(request)
    reuse_freed_memory()
    job = _Job(request, Path(output_dir), on_event, should_stop, job_id or uuid.uuid4().hex[:12])
    try:
        return job.run()
    except BaseException:
        job.remove_output_dir_if_unused()
        raise


@dataclass
class _FinishedVariant:
    spec: VariantSpec
    result: VariantResult
    thumbnail: object  # contact_sheet.Thumbnail


@dataclass
class _Job:
    """The state of one running job: its variant plan, the files written and those still encoding."""

    request: JobRequest
    output_dir: Path
    on_event: EventCallback | None
    should_stop: StopCheck | None
    job_id: str
    language: str = ""
    variants: list[VariantSpec] = field(default_factory=list)
    finished: list[_FinishedVariant] = field(default_factory=list)
    pending: list[tuple[Future, VariantSpec, VariantResult, object]] = field(default_factory=list)
    used_stems: set[str] = field(default_factory=set)
    started_stages: set[tuple] = field(default_factory=set)
    source_hashes: dict[str, str] = field(default_factory=dict)
    selection: object = None
    rendered: int = 0
    total_to_render: int = 1
    created_dirs: list[Path] = field(default_factory=list)  # folders this job made for its output, deepest first
    helper: ThreadPoolExecutor | None = None  # one thread beside the job's own: the early decode, then the matte
    early_decode: tuple[str, Future] | None = None  # (frame, its full decode), started before the analysis

    def run(self) -> JobResult:
        from .i18n import current_language

        self.language = self.request.language or current_language()
        self.variants = plan_variants(self.request)
        self._prepare_output_dir()
        log.info("job %s: %d frames, %d variants per frame, output %s", self.job_id, len(self.request.frames), len(self.variants), self.output_dir)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"helper-{self.job_id}") as self.helper:
            # 1. Analyse every frame and choose the best. The frame of a one-frame job is decoded meanwhile.
            self._start_early_decode()
            analyses = self._analyse()
            chosen = self._select(analyses)

            # 2. Render each chosen frame's variants; files are encoded in the background.
            self.total_to_render = max(1, len(chosen) * len(self.variants))
            frame_reports = {str(ranked.analysis.path): self._frame_report(ranked) for ranked in self.selection.frames}
            with ThreadPoolExecutor(max_workers=ENCODE_WORKERS, thread_name_prefix=f"encode-{self.job_id}") as pool:
                try:
                    for rank, analysis in chosen:
                        frame_reports[str(analysis.path)].update(self._render_frame(pool, analysis, rank))
                    self._collect_written(wait=True)
                except BaseException:
                    for future, *_ in self.pending:
                        future.cancel()
                    raise
            self.early_decode = None

        # 3. The contact sheet, then the report that marks the job complete.
        self._check_stop()
        return self._publish(list(frame_reports.values()))

    # -- analysis and selection -------------------------------------------------

    def _start_early_decode(self) -> None:
        """Decode a one-frame job's frame in the helper thread while the analysis reads its preview.

        The analysis and crop planning use one core, so on a machine with more the decode costs no time. A frame
        the analysis rejects, or whose crops need a reduced decode only, drops the result.
        """
        from .photo_io import read_photo

        if len(self.request.frames) != 1 or (os.cpu_count() or 1) < 2:
            return
        frame = str(self.request.frames[0])
        try:
            with Image.open(frame) as image:
                pixels = image.size[0] * image.size[1]
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return  # the analysis reports what is wrong with the file
        if pixels <= EARLY_DECODE_MAX_PIXELS:
            self.early_decode = (frame, self.helper.submit(read_photo, frame))

    def _analyse(self) -> list:
        from .analysis import analyze_file

        analyses = []
        self._stage_started(Stage.analysing, None)
        for index, frame in enumerate(self.request.frames):
            self._check_stop()
            started = time.perf_counter()
            analysis = analyze_file(frame)
            analyses.append(analysis)
            described = analysis.to_dict(self.language)
            self._emit(
                JobEvent(
                    EventKind.frame_scored,
                    stage=Stage.analysing,
                    frame=str(frame),
                    score=described.get("score"),
                    reasons=[{"code": reason["code"], "message": reason["message"]} for reason in described.get("reasons", [])],
                )
            )
            self._progress(Stage.analysing, ANALYSIS_SHARE * (index + 1) / len(self.request.frames))
            self._log_stage(frame, Stage.analysing, started, f"score {described.get('score')}")
        return analyses

    def _select(self, analyses: list) -> list[tuple[int, object]]:
        """Return (rank, analysis) for the frames to render, best first; raise when no frame is usable."""
        from .selection import select_frames

        self._check_stop()
        self._stage_started(Stage.selecting, None)
        started = time.perf_counter()
        self.selection = select_frames(analyses, top=self.request.top)
        chosen = [(ranked.rank, ranked.analysis) for ranked in self.selection.frames if ranked.selected]
        if not chosen:
            readable = [analysis for analysis in analyses if analysis.error is None]
            if not readable:
                raise analyses[0].error
            raise HeadshotError("frame_without_face", readable[0].path, "no frame of the session shows a face")
        self._log_stage(None, Stage.selecting, started, ", ".join(f"{rank}: {Path(a.path).name}" for rank, a in chosen))
        return chosen

    def _frame_report(self, ranked) -> dict:
        """Describe one frame: its score, reasons, faces, rank and why, and the source's SHA-256."""
        entry = ranked.to_dict(self.language)
        entry["variants"] = []
        if ranked.analysis.error is None:
            entry["sha256"] = self._source_hash(str(ranked.analysis.path))
        return entry

    def _source_hash(self, frame: str) -> str:
        from .photo_io import hash_file

        if frame not in self.source_hashes:
            self.source_hashes[frame] = hash_file(frame)
        return self.source_hashes[frame]

    # -- one frame ----------------------------------------------------------------

    def _render_frame(self, pool: ThreadPoolExecutor, analysis, rank: int) -> dict:
        from .photo_io import probe

        frame = str(analysis.path)
        settings_by_preset = _retouch_settings(self.request)
        faces = _analysis_faces(analysis)
        if not faces:
            raise HeadshotError("frame_without_face", frame, "the analysis found no face in a selected frame")
        main_face = faces[0]

        # 1. Plan every crop on the analysed face, in frame pixels, at its delivery size, and the region they share.
        self._check_stop()
        self._stage_started(Stage.reading, frame)
        started = time.perf_counter()
        info = probe(frame)
        width, height = info.width, info.height
        crop_names = list(dict.fromkeys(variant.crop for variant in self.variants))
        plans, picture = _plan_crops(frame, info, main_face, [name for name in crop_names if name != AS_SHOT], analysis.small_copy)
        keep_full_frame = AS_SHOT in crop_names
        inside_bars = None if keep_full_frame or picture == (0, 0, width, height) else picture
        region = CropRegion.around(plans.values(), width, height, keep_full_frame, picture=inside_bars)

        # 2. Decode the frame once, at the resolution the region needs, and cut the region.
        early = self.early_decode[1] if self.early_decode is not None and self.early_decode[0] == frame else None
        self.early_decode = None
        photo, decoded_scale = _decode_for_region(frame, info, region, early)
        image = _region_tensor(region.cut(photo.pixels, decoded_scale))
        region_faces = [region.face(face) for face in faces]
        photo = replace(photo, pixels=None)
        self._log_stage(
            frame, Stage.reading, started,
            f"{width}x{height} {info.format} {info.bit_depth}-bit, decoded at {decoded_scale:.3f}, region {tuple(round(float(value)) for value in region.box)} "
            f"at {region.scale_x:.3f}{f', levelled by {math.degrees(region.angle):.2f}°' if region.levelled else ''}",
        )

        # 3. The matte (when a variant changes the backdrop or light) and one retouch per preset: the helper thread
        #    makes the matte while this one retouches, except where a crop reaches past the frame and needs it first.
        needs_matte = any(variant.backdrop != AS_SHOT or variant.light != AS_SHOT for variant in self.variants)
        needs_edge = any(variant.backdrop != AS_SHOT and variant.light in _unchanged_lights() for variant in self.variants)
        edge = wrap = None
        if needs_matte:
            self._check_stop()
            self._stage_started(Stage.matting, frame)
        if region.reaches_past_edge:
            from .crops import extend_frame

            # The frame's own pixels are matted and retouched side by side, then both are carried past the edge.
            matting = self.helper.submit(self._matte, frame, image, region_faces, region) if needs_matte else None
            bases = self._retouched_bases(frame, image, region_faces, settings_by_preset, region.inside_window)
            inside_matte = matting.result() if matting is not None else None
            matte = None
            for preset, base in bases.items():
                bases[preset], matte = extend_frame(base, inside_matte, region.inside_window, region_faces)
            del inside_matte
        else:
            matting = self.helper.submit(self._matte_and_edge, frame, image, region_faces, region, needs_edge) if needs_matte else None
            bases = self._retouched_bases(frame, image, region_faces, settings_by_preset)
            matte, edge, wrap, fill = matting.result() if matting is not None else (None, None, None, None)
            if fill is None and region.past_top:
                from .crops import fill_past_picture

                fill = fill_past_picture(image, image.new_zeros((1, *image.shape[-2:])), region.picture_mask(image.device))[2]
            if fill is not None:
                bases = {preset: fill(base) for preset, base in bases.items()}
        del image

        # 5. Per light, per backdrop, per crop: relight, composite, crop and hand to the encoder.
        context = _FrameContext(
            frame, photo, analysis, rank, main_face, region, plans, region_faces, matte, settings_by_preset,
            stem=self._unique_stem(Path(frame).stem), source_sha256=self._source_hash(frame), edge=edge, wrap=wrap,
        )
        for preset, base in bases.items():
            self._render_variants_of(pool, context, preset, base)
        del bases, matte
        return {"region": {"box": [round(float(value), 2) for value in region.box], "scale": round(region.scale_x, 4),
                           "angle_degrees": round(math.degrees(region.angle), 3)}}

    def _matte_and_edge(self, frame: str, image: torch.Tensor, faces: list[Face], region: "CropRegion", with_edge: bool):
        """Return the matte of `image` and, with `with_edge`, its `EdgeColours` over `image` and its light-wrap
        basis (else None for both).

        Taken before the retouch, the edge colours serve its result too: a retouch leaves the backdrop as it is
        and changes the subject's colours by a level or two.
        """
        from .backdrops import light_wrap_basis
        from .matte import edge_colours

        matte = self._matte(frame, image, faces, region)
        fill = None
        if region.levelled and region.past_top:
            from .crops import fill_past_picture

            image, matte, fill = fill_past_picture(image, matte, region.picture_mask(image.device))
        if not with_edge:
            return matte, None, None, fill
        return matte, edge_colours(image, matte), light_wrap_basis(matte), fill

    def _matte(self, frame: str, image: torch.Tensor, faces: list[Face], region: "CropRegion") -> torch.Tensor:
        """Return the person matte of `image` (the region), made from the frame's own pixels.

        May run in a helper thread: it announces no stage itself, which `_stage_started` did before.
        """
        from .matte import person_matte

        started = time.perf_counter()
        # Only the frame's own pixels are matted; past its edge the matte stays 0 until `extend_frame` fills it.
        x0, y0, x1, y1 = region.inside_window
        height, width = image.shape[-2:]
        inside_faces = [_shifted_face(face, -x0, -y0) for face in faces]
        # The first face is the subject's; the frame's other people are not part of a headshot.
        inside_matte = person_matte(image[:, y0:y1, x0:x1], inside_faces[:1], bystanders=inside_faces[1:])
        if (x0, y0, x1, y1) == (0, 0, width, height):
            matte = inside_matte
        else:
            matte = image.new_zeros((1, height, width))
            matte[:, y0:y1, x0:x1] = inside_matte
        self._log_stage(frame, Stage.matting, started, f"{tuple(inside_matte.shape)} of {tuple(matte.shape)}")
        return matte

    def _retouched_bases(
        self, frame: str, image: torch.Tensor, faces: list[Face], settings_by_preset: dict,
        window: tuple[int, int, int, int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Retouch `image` once per preset the variants use; "off" is the image itself.

        With `window` (x0, y0, x1, y1), only that part of `image` is the frame's picture, and only it is retouched.
        """
        from .retouch import retouch

        bases: dict[str, torch.Tensor] = {}
        for preset in dict.fromkeys(variant.retouch for variant in self.variants):
            if preset == "off":
                bases[preset] = image
                continue
            self._check_stop()
            self._stage_started(Stage.retouching, frame)
            started = time.perf_counter()
            if window is None or tuple(window) == (0, 0, image.shape[-1], image.shape[-2]):
                bases[preset] = retouch(image, faces, settings_by_preset[preset], should_stop=self.should_stop)
            else:
                x0, y0, x1, y1 = window
                inside = [_shifted_face(face, -x0, -y0) for face in faces]
                bases[preset] = image.clone()
                bases[preset][:, y0:y1, x0:x1] = retouch(
                    image[:, y0:y1, x0:x1], inside, settings_by_preset[preset], should_stop=self.should_stop
                )
            self._check_stop()
            self._log_stage(frame, Stage.retouching, started, getattr(settings_by_preset[preset], "name", ""))
        return bases

    def _render_variants_of(self, pool: ThreadPoolExecutor, context: "_FrameContext", preset: str, base: torch.Tensor) -> None:
        from .backdrops import composite, light_wrap_basis, parse_backdrop, render_backdrop
        from .matte import decontaminate
        from .relight import parse_light, relight

        # Lights the relight module leaves as they are ("natural" among them) skip its copy of the frame.
        unchanged_lights = _unchanged_lights()
        variants = [variant for variant in self.variants if variant.retouch == preset]
        for light in dict.fromkeys(variant.light for variant in variants):
            # 1. Relight once per light.
            self._check_stop()
            lit = base
            if light not in unchanged_lights:
                self._stage_started(Stage.relighting, context.frame)
                started = time.perf_counter()
                lit = relight(base, context.faces, parse_light(light), matte=context.matte)
                self._log_stage(context.frame, Stage.relighting, started, light)

            # 2. Composite once per backdrop; the decontaminated foreground is shared by all backdrops.
            foreground = None
            of_light = [variant for variant in variants if variant.light == light]
            for backdrop in dict.fromkeys(variant.backdrop for variant in of_light):
                self._check_stop()
                composed = lit
                if backdrop != AS_SHOT:
                    self._stage_started(Stage.compositing, context.frame)
                    started = time.perf_counter()
                    if foreground is None:
                        foreground = decontaminate(lit, context.matte, context.edge if light in unchanged_lights else None)
                    if context.wrap is None:
                        context.wrap = light_wrap_basis(context.matte)
                    spec = parse_backdrop(backdrop)
                    backdrop_image = render_backdrop(spec, lit, context.matte, context.faces, color_in_profile=context.color_in_profile)
                    composed = composite(foreground, context.matte, backdrop_image, out=backdrop_image, basis=context.wrap)
                    del backdrop_image
                    self._log_stage(context.frame, Stage.compositing, started, backdrop)

                # 3. Crop, convert and queue each file for encoding.
                for variant in (variant for variant in of_light if variant.backdrop == backdrop):
                    self._check_stop()
                    self._queue_variant(pool, context, variant, composed)
                    self._collect_written(wait=False)
                del composed
            del foreground, lit

    def _queue_variant(self, pool: ThreadPoolExecutor, context: "_FrameContext", variant: VariantSpec, composed: torch.Tensor) -> None:
        from .contact_sheet import Thumbnail

        # 1. Cut the crop out of the region; the as-shot crop is the frame itself, pixel for pixel.
        if variant.crop == AS_SHOT:
            cropped = context.region.full_frame(composed)
        else:
            cropped = _apply_crop(composed, context.region.plan(context.plans[variant.crop]))

        # 2. Convert to integer pixels here, since a queued float crop takes four times the memory;
        #    encode and make the thumbnail in the pool.
        info = context.photo.info
        output_format = _output_format(info, self.request.output_format)
        bit_depth = _output_bit_depth(info, self.request.bit_depth, output_format, context.frame)
        pixels = _integer_pixels(cropped, bit_depth)
        alpha = context.photo.alpha if (variant.crop == AS_SHOT and variant.backdrop == AS_SHOT) else None
        path = self.output_dir / variant_file_name(context.stem, variant, _extension(context.frame, output_format))
        self._stage_started(Stage.writing, context.frame)
        future = pool.submit(
            _encode_variant, path, pixels, alpha, info, output_format, bit_depth,
            context.photo.icc_profile, tuple(self.request.frames), self.request.jpeg_quality, PRINT_DPI.get(variant.crop),
        )

        # 3. Record the recipe and the thumbnail's label while the pool works.
        result = VariantResult(
            variant_id=f"{context.stem}_{variant.retouch}_{_safe_part(variant.backdrop)}_{_safe_part(variant.light)}_{_safe_part(variant.crop)}",
            path=path,
            frame=context.frame,
            recipe=self._recipe(context, variant, output_format, bit_depth),
            width=int(pixels.shape[1]),
            height=int(pixels.shape[0]),
            score=float(context.analysis.score),
        )
        thumbnail = Thumbnail(
            pixels=None,
            name=path.name,
            styles=f"{display_name('backdrop', variant.backdrop, self.language)} · {display_name('light', variant.light, self.language)}",
            crop=display_name("crop", variant.crop, self.language),
            score=gettext_for(self.language)(N_("Score {score:.0f}/100 · rank {rank}")).format(score=result.score, rank=context.rank),
        )
        self.pending.append((future, variant, result, thumbnail))

        # Each queued crop keeps its region tensors alive, so at most one per worker waits.
        while len(self.pending) > ENCODE_WORKERS:
            self.pending[0][0].result()
            self._collect_written(wait=False)

    def _collect_written(self, wait: bool) -> None:
        """Announce the files the encoder finished; with `wait`, wait for all of them. Re-raises a failed write."""
        still_pending = []
        for future, variant, result, thumbnail in self.pending:
            if not wait and not future.done():
                still_pending.append((future, variant, result, thumbnail))
                continue
            result.path, thumbnail.pixels = future.result()
            self.finished.append(_FinishedVariant(variant, result, thumbnail))
            self.rendered += 1
            self._emit(JobEvent(EventKind.variant_ready, stage=Stage.writing, frame=result.frame, score=result.score, variant=result))
            self._progress(Stage.writing, ANALYSIS_SHARE + RENDER_SHARE * self.rendered / self.total_to_render)
            log.info("job %s frame %s stage writing: %s (%dx%d)", self.job_id, Path(result.frame).name, result.path.name, result.width, result.height)
        self.pending = still_pending

    def _recipe(self, context: "_FrameContext", variant: VariantSpec, output_format: str, bit_depth: int) -> dict:
        from .photo_io import print_resolution
        from .report import icc_description

        settings = context.settings_by_preset[variant.retouch]
        recipe = {
            "retouch": {"preset": variant.retouch, "settings": _settings_dict(settings)},
            "makeup": self.request.makeup if variant.retouch != "off" else "none",
            "backdrop": _backdrop_recipe(variant.backdrop),
            "light": {"name": variant.light, "strength": 1.0},
            "crop": _crop_recipe(
                variant.crop, context.plans.get(variant.crop), (context.photo.info.height, context.photo.info.width),
                context.region.picture,
            ),
            "output": {
                "format": output_format,
                "bit_depth": bit_depth,
                "dpi": PRINT_DPI.get(variant.crop) or print_resolution(context.photo.info),
                "jpeg_quality": self.request.jpeg_quality if output_format == "jpeg" else None,
                "icc_profile": icc_description(context.photo.icc_profile),
            },
            "source": {
                "file": context.frame,
                "sha256": context.source_sha256,
                "width": context.photo.info.width,
                "height": context.photo.info.height,
                "face_box": [round(float(value), 2) for value in context.main_face.box],
            },
        }
        mouth_open = context.analysis.metrics.get("mouth_open")
        if variant.crop in PASSPORT_CROPS and mouth_open is not None:
            recipe["crop"]["mouth_open"] = round(float(mouth_open), 3)
        if variant.overridden:
            _ = gettext_for(self.language)
            recipe["overrides"] = {
                "parts": list(variant.overridden),
                "requested": {"backdrops": self.request.backdrops, "retouch": self.request.retouch, "makeup": self.request.makeup},
                "reason": _(_PASSPORT_RULE),
            }
        return recipe

    # -- publishing -----------------------------------------------------------------

    def _publish(self, frame_reports: list[dict]) -> JobResult:
        from .contact_sheet import write_contact_sheet
        from .report import build_report, write_report

        # 1. Put the variants back in request order and attach them to their frames.
        order = {variant.key: index for index, variant in enumerate(self.variants)}
        frames_order = {str(frame): index for index, frame in enumerate(self.request.frames)}
        self.finished.sort(key=lambda item: (frames_order.get(item.result.frame, 0), order[item.spec.key]))
        by_frame = {entry["file"]: entry for entry in frame_reports}
        variant_entries = []
        for item in self.finished:
            entry = {
                "id": item.result.variant_id,
                "file": item.result.path.name,
                "frame": item.result.frame,
                "width": item.result.width,
                "height": item.result.height,
                "score": item.result.score,
                "recipe": item.result.recipe,
                "notes": variant_notes(item.result.recipe, self.language),
            }
            variant_entries.append(entry)
            by_frame[item.result.frame]["variants"].append(item.result.path.name)

        # 2. The contact sheet.
        _ = gettext_for(self.language)
        self._stage_started(Stage.writing, None)
        started = time.perf_counter()
        title = _(N_("Headshot Studio · {count} variants · {frames}")).format(
            count=len(self.finished), frames=", ".join(sorted({Path(item.result.frame).name for item in self.finished}))
        )
        contact_sheet_path = write_contact_sheet(self.output_dir / CONTACT_SHEET_NAME, [item.thumbnail for item in self.finished], title)
        self._log_stage(None, Stage.writing, started, contact_sheet_path.name)

        # 3. The report, last: once it exists, every file it names is complete.
        report = build_report(self.job_id, self.request.to_dict(), frame_reports, variant_entries, contact_sheet_path.name, self.language)
        report_path = write_report(self.output_dir / REPORT_NAME, report)
        self._progress(Stage.writing, 1.0)
        log.info("job %s: finished, %d variants, report %s", self.job_id, len(self.finished), report_path)
        return JobResult([item.result for item in self.finished], report_path, contact_sheet_path, report)

    # -- helpers ----------------------------------------------------------------------

    def _prepare_output_dir(self) -> None:
        from .photo_io.failures import os_reason

        missing = self.output_dir.absolute()
        while not missing.exists() and missing != missing.parent:
            self.created_dirs.append(missing)
            missing = missing.parent
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            # A folder that exists but cannot be written would otherwise fail only once every variant is rendered.
            with tempfile.TemporaryFile(dir=self.output_dir):
                pass
        except OSError as error:
            raise HeadshotError("write_failed", self.output_dir, str(error), reason=os_reason(error)) from error
        inputs = {Path(frame).resolve() for frame in self.request.frames}
        for name in (REPORT_NAME, CONTACT_SHEET_NAME):
            if (self.output_dir / name).resolve() in inputs:
                raise HeadshotError("would_overwrite_input", self.output_dir / name, "an input frame has the report's or contact sheet's name")

    def remove_output_dir_if_unused(self) -> None:
        """After a failed job, remove the folders this job made for its output, as long as nothing was written there."""
        for folder in self.created_dirs:
            try:
                folder.rmdir()  # only an empty folder goes
            except OSError:
                return

    def _unique_stem(self, stem: str) -> str:
        safe = _safe_part(stem) or "frame"
        candidate, counter = safe, 2
        while candidate in self.used_stems:
            candidate = f"{safe}-{counter}"
            counter += 1
        self.used_stems.add(candidate)
        return candidate

    def _check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            log.info("job %s: canceled", self.job_id)
            raise JobCanceled(self.job_id)

    def _emit(self, event: JobEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _stage_started(self, stage: Stage, frame: str | None) -> None:
        """Announce a stage the first time it starts for a frame (None: for the whole job)."""
        if (stage, frame) in self.started_stages:
            return
        self.started_stages.add((stage, frame))
        self._emit(JobEvent(EventKind.stage_started, stage=stage, frame=frame))

    def _progress(self, stage: Stage, fraction: float) -> None:
        self._emit(JobEvent(EventKind.progress, stage=stage, fraction=min(1.0, max(0.0, fraction))))

    def _log_stage(self, frame: str | None, stage: Stage, started: float, detail: str = "") -> None:
        name = Path(frame).name if frame else "-"
        log.info("job %s frame %s stage %s: %.2f s %s", self.job_id, name, stage.value, time.perf_counter() - started, detail)


@dataclass
class _FrameContext:
    frame: str
    photo: object
    analysis: object
    rank: int
    main_face: Face
    region: "CropRegion"
    plans: dict
    faces: list[Face]
    matte: torch.Tensor | None
    settings_by_preset: dict
    stem: str
    source_sha256: str
    edge: object = None  # matte.EdgeColours of the frame before retouch, for the lights that leave it unchanged
    wrap: object = None  # backdrops.LightWrapBasis of the matte, made once per frame

    @property
    def color_in_profile(self):
        """Return the conversion of sRGB colours (0..1) into the frame's profile, or None when the frame is sRGB."""
        from .color import is_srgb
        from .photo_io import srgb_color_in_profile

        if is_srgb(self.photo.icc_profile):
            return None
        return functools.partial(_color_in_profile, srgb_color_in_profile, self.photo.icc_profile)


@dataclass
class CropRegion:
    """The part of a frame all crops keep, in frame pixels, and its working scale.

    Where a crop reaches past the frame's edge, so does the region; `crops.extend_frame` fills that part.
    """

    left: int
    top: int
    right: int
    bottom: int
    frame_width: int
    frame_height: int
    width: int  # working size after scaling
    height: int
    picture: tuple[int, int, int, int] | None = None  # the frame's part inside black bars; None: all of it
    # Levelled: the box is in the frame turned by -angle (radians) about its origin, so the crops' own roll is
    # taken out when the region is cut and the sharpest crop is a plain slice of it. See `levelled_around`.
    levelled: bool = False
    angle: float = 0.0
    past_top: bool = False  # a levelled region's crops reach past the picture's top, where `fill_past_picture` fills

    @property
    def picture_box(self) -> tuple[int, int, int, int]:
        """Return (x0, y0, x1, y1): the part of the frame treated as picture, in frame pixels."""
        return self.picture or (0, 0, self.frame_width, self.frame_height)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.right, self.bottom

    @property
    def scale_x(self) -> float:
        return self.width / (self.right - self.left)

    @property
    def scale_y(self) -> float:
        return self.height / (self.bottom - self.top)

    @classmethod
    def around(
        cls, plans, frame_width: int, frame_height: int, keep_full_frame: bool,
        picture: tuple[int, int, int, int] | None = None,
    ) -> "CropRegion":
        """Return the union of the crops' rotated rectangles plus a margin, at the scale the sharpest crop needs.

        `picture` is the frame's part inside black bars; the region treats its edges as the frame's.
        Crops that share one roll and stay within the picture's sides and bottom get a levelled region
        (`levelled_around`).
        """
        plans = list(plans)
        if not keep_full_frame and plans:
            levelled = cls.levelled_around(plans, frame_width, frame_height, picture)
            if levelled is not None:
                return levelled
        bounds = [_plan_bounds(plan) for plan in plans]
        if keep_full_frame:
            bounds.append((0.0, 0.0, float(frame_width), float(frame_height)))
        left = min(bound[0] for bound in bounds)
        top = min(bound[1] for bound in bounds)
        right = max(bound[2] for bound in bounds)
        bottom = max(bound[3] for bound in bounds)

        # The margin never pushes the region past a picture edge that no crop reaches past.
        picture_left, picture_top, picture_right, picture_bottom = picture or (0, 0, frame_width, frame_height)
        margin = max(REGION_MARGIN_MIN_PX, REGION_MARGIN * max(right - left, bottom - top))
        left = min(left, max(float(picture_left), left - margin))
        top = min(top, max(float(picture_top), top - margin))
        right = max(right, min(float(picture_right), right + margin))
        bottom = max(bottom, min(float(picture_bottom), bottom + margin))
        left, top, right, bottom = math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom)

        # The as-shot crop must stay pixel for pixel. Otherwise the region shrinks to what the largest
        # output needs, unless that is so close to full size that resampling would only soften it.
        scale = 1.0
        if not keep_full_frame and plans:
            scale = min(1.0, max(max(plan.output_width / plan.width, plan.output_height / plan.height) for plan in plans))
            scale = 1.0 if scale >= FULL_SIZE_SCALE else scale
        width = max(1, round((right - left) * scale))
        height = max(1, round((bottom - top) * scale))
        return cls(left, top, right, bottom, frame_width, frame_height, width, height, picture)

    @classmethod
    def levelled_around(
        cls, plans: list, frame_width: int, frame_height: int, picture: tuple[int, int, int, int] | None = None
    ) -> "CropRegion | None":
        """Return a levelled region around crops that share one roll, or None where it does not fit.

        The region is cut from the frame turned upright by that roll, at exactly the scale of its sharpest crop
        (never above 1). Its corner is placed so that this crop's corner falls on a whole pixel, which makes that
        crop a slice of the region. The roll then costs one resampling of the region, not one per crop and
        backdrop. None when the crops' rolls differ or a crop reaches past the picture's sides or bottom. A crop
        may reach past the top, where only backdrop continues: the region is then marked `past_top`.
        """
        if len({plan.angle_degrees for plan in plans}) != 1:
            return None
        angle = math.radians(plans[0].angle_degrees)
        cos, sin = math.cos(angle), math.sin(angle)
        picture_left, picture_top, picture_right, picture_bottom = picture or (0, 0, frame_width, frame_height)
        past_top = False
        for plan in plans:
            if not plan.reaches_past_edge:
                continue
            half_width, half_height = plan.width / 2, plan.height / 2
            corners = [(plan.center_x + cos * u - sin * v, plan.center_y + sin * u + cos * v)
                       for u in (-half_width, half_width) for v in (-half_height, half_height)]
            if any(x < picture_left - 0.5 or x > picture_right + 0.5 or y > picture_bottom + 0.5 for x, y in corners):
                return None
            past_top = True
        rectangles = []
        for plan in plans:
            center_x, center_y = cos * plan.center_x + sin * plan.center_y, -sin * plan.center_x + cos * plan.center_y
            rectangles.append((center_x - plan.width / 2, center_y - plan.height / 2, center_x + plan.width / 2, center_y + plan.height / 2))
        sharpest = max(range(len(plans)), key=lambda index: max(plans[index].output_width / plans[index].width, plans[index].output_height / plans[index].height))
        scale_x, scale_y = plans[sharpest].output_width / plans[sharpest].width, plans[sharpest].output_height / plans[sharpest].height
        if max(scale_x, scale_y) > 1.0:
            scale_x = scale_y = 1.0
        left, top = min(box[0] for box in rectangles), min(box[1] for box in rectangles)
        right, bottom = max(box[2] for box in rectangles), max(box[3] for box in rectangles)

        # The margin as for a straight region. Where the turned region's corners pass the picture's edge, no crop
        # reaches, and the cut mirrors the picture there.
        margin = max(REGION_MARGIN_MIN_PX, REGION_MARGIN * max(right - left, bottom - top))
        corner_x, corner_y = rectangles[sharpest][:2]
        region_left = corner_x - math.ceil((corner_x - left + margin) * scale_x - 1e-6) / scale_x
        region_top = corner_y - math.ceil((corner_y - top + margin) * scale_y - 1e-6) / scale_y
        width = math.ceil((right + margin - region_left) * scale_x - 1e-6)
        height = math.ceil((bottom + margin - region_top) * scale_y - 1e-6)
        return cls(region_left, region_top, region_left + width / scale_x, region_top + height / scale_y, frame_width,
                   frame_height, width, height, picture, levelled=True, angle=angle, past_top=past_top)

    def picture_mask(self, device=None) -> torch.Tensor:
        """Return (1, H, W): 1 where a region pixel's centre lies on the frame's picture, else 0."""
        angle = self.angle if self.levelled else 0.0
        cos, sin = math.cos(angle), math.sin(angle)
        columns = self.left + (torch.arange(self.width, dtype=torch.float64) + 0.5).view(1, -1) / self.scale_x
        rows = self.top + (torch.arange(self.height, dtype=torch.float64) + 0.5).view(-1, 1) / self.scale_y
        x, y = cos * columns - sin * rows, sin * columns + cos * rows
        left, top, right, bottom = self.picture_box
        inside = (x >= left) & (x <= right) & (y >= top) & (y <= bottom)
        return inside.to(torch.float32)[None].to(device or "cpu")

    def to_levelled(self, points: np.ndarray) -> np.ndarray:
        """Return frame points (N, 2) in the coordinates of the region's box: turned by -angle when levelled."""
        if not self.levelled:
            return points
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        x, y = points[:, 0], points[:, 1]
        return np.stack([cos * x + sin * y, -sin * x + cos * y], axis=1).astype(points.dtype)

    def cut(self, pixels: np.ndarray, pixels_scale: float = 1.0) -> np.ndarray:
        """Cut the region out of (H, W, 3) pixels at the working size; past the frame's edge it is left black.

        `pixels_scale` is the pixels' size relative to the frame (below 1 for a reduced decode); the cut
        is then placed to the nearest decoded pixel. `crops.extend_frame` fills the part past the edge.
        A levelled region is shrunk by area averaging where it is smaller than the pixels, then turned
        with a cubic resampling.
        """
        if self.levelled:
            return self._cut_levelled(pixels, pixels_scale)
        picture_left, picture_top, picture_right, picture_bottom = self.picture_box
        left, top = max(picture_left, self.left), max(picture_top, self.top)
        right, bottom = min(picture_right, self.right), min(picture_bottom, self.bottom)
        inside = pixels[round(top * pixels_scale) : round(bottom * pixels_scale), round(left * pixels_scale) : round(right * pixels_scale)]
        x0, y0, x1, y1 = self.inside_window
        if (x1 - x0, y1 - y0) != (inside.shape[1], inside.shape[0]):
            inside = cv2.resize(inside, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        if not self.reaches_past_edge:
            return inside
        canvas = np.zeros((self.height, self.width, pixels.shape[2]), dtype=pixels.dtype)
        canvas[y0:y1, x0:x1] = inside
        return canvas

    def _cut_levelled(self, pixels: np.ndarray, pixels_scale: float) -> np.ndarray:
        # 1. The part of the picture under the turned region (past its edge the cut mirrors it, black bars
        #    included), shrunk by area averaging where the region is smaller.
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        corners = np.array([(cos * x - sin * y, sin * x + cos * y) for x in (self.left, self.right) for y in (self.top, self.bottom)])
        corners = corners * pixels_scale
        picture_left, picture_top, picture_right, picture_bottom = (round(value * pixels_scale) for value in self.picture_box)
        x0 = max(picture_left, math.floor(corners[:, 0].min()) - 4)
        y0 = max(picture_top, math.floor(corners[:, 1].min()) - 4)
        x1 = min(picture_right, pixels.shape[1], math.ceil(corners[:, 0].max()) + 4)
        y1 = min(picture_bottom, pixels.shape[0], math.ceil(corners[:, 1].max()) + 4)
        part = pixels[y0:y1, x0:x1]
        shrink = min(1.0, max(self.scale_x, self.scale_y) / pixels_scale)
        factor_x = factor_y = 1.0
        if shrink < FULL_SIZE_SCALE:
            size = (max(1, round(part.shape[1] * shrink)), max(1, round(part.shape[0] * shrink)))
            factor_x, factor_y = size[0] / part.shape[1], size[1] / part.shape[0]
            part = cv2.resize(part, size, interpolation=cv2.INTER_AREA)

        # 2. The map from a region pixel (its centre at index + 0.5) to the part's pixel indices, then one cubic
        #    resampling. OpenCV puts a pixel's centre on its index.
        step_x, step_y = pixels_scale / self.scale_x, pixels_scale / self.scale_y
        origin_x = pixels_scale * (cos * (self.left + 0.5 / self.scale_x) - sin * (self.top + 0.5 / self.scale_y))
        origin_y = pixels_scale * (sin * (self.left + 0.5 / self.scale_x) + cos * (self.top + 0.5 / self.scale_y))
        inverse = np.array([
            [factor_x * cos * step_x, -factor_x * sin * step_y, factor_x * (origin_x - x0) - 0.5],
            [factor_y * sin * step_x, factor_y * cos * step_y, factor_y * (origin_y - y0) - 0.5],
        ])
        return cv2.warpAffine(part, inverse, (self.width, self.height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT_101)

    @property
    def inside_window(self) -> tuple[int, int, int, int]:
        """Return (x0, y0, x1, y1): where the frame's picture lies in the working-size region."""
        if self.levelled:
            return 0, 0, self.width, self.height
        picture_left, picture_top, picture_right, picture_bottom = self.picture_box
        x0 = round((max(picture_left, self.left) - self.left) * self.scale_x)
        y0 = round((max(picture_top, self.top) - self.top) * self.scale_y)
        x1 = min(self.width, round((min(picture_right, self.right) - self.left) * self.scale_x))
        y1 = min(self.height, round((min(picture_bottom, self.bottom) - self.top) * self.scale_y))
        return x0, y0, max(x0 + 1, x1), max(y0 + 1, y1)

    @property
    def reaches_past_edge(self) -> bool:
        return self.inside_window != (0, 0, self.width, self.height)

    def face(self, face: Face) -> Face:
        """Return a face in region pixels."""
        scale_x, scale_y = self.scale_x, self.scale_y
        x, y, width, height = face.box
        offset = np.array([self.left, self.top], dtype=np.float64)
        scale = np.array([scale_x, scale_y], dtype=np.float64)
        landmarks = None
        if face.landmarks is not None:
            landmarks = face.landmarks.astype(np.float32).copy()
            landmarks[:, :2] = (self.to_levelled(landmarks[:, :2].astype(np.float64)) - offset) * scale
            landmarks[:, 2] *= scale_x
        # The box keeps its size; a levelled region moves its centre.
        center_x, center_y = self.to_levelled(np.array([[x + width / 2, y + height / 2]]))[0]
        return Face(
            box=((center_x - width / 2 - self.left) * scale_x, (center_y - height / 2 - self.top) * scale_y, width * scale_x, height * scale_y),
            score=face.score,
            keypoints=((self.to_levelled(np.asarray(face.keypoints, dtype=np.float64)) - offset) * scale).astype(np.float32),
            landmarks=landmarks,
        )

    def plan(self, plan):
        """Return a crop plan in region pixels; the output size stays as planned, and the region covers the crop.

        In a levelled region the crop's roll is already taken out.
        """
        center_x, center_y = self.to_levelled(np.array([[plan.center_x, plan.center_y]], dtype=np.float64))[0]
        angle = plan.angle_degrees - math.degrees(self.angle) if self.levelled else plan.angle_degrees
        return _replace(
            plan,
            reaches_past_edge=False,
            center_x=float(center_x - self.left) * self.scale_x,
            center_y=float(center_y - self.top) * self.scale_y,
            angle_degrees=0.0 if abs(angle) < 1e-9 else angle,
            width=plan.width * self.scale_x,
            height=plan.height * self.scale_y,
        )

    def full_frame(self, image: torch.Tensor) -> torch.Tensor:
        """Return the whole frame from a region tensor at scale 1."""
        if abs(self.scale_x - 1.0) > 1e-9 or abs(self.scale_y - 1.0) > 1e-9 or self.levelled:
            raise ValueError("the as-shot crop needs the region straight and at full resolution")
        x0, y0, x1, y1 = self.inside_window
        return image[:, y0:y1, x0:x1]


# Roll below this many degrees is levelled without a note, because a person would not notice it.
LEVELLING_NOTE_DEGREES = 0.5

_VARIANT_NOTES = {
    "black_bars": N_("The photo has black bars; the crop was planned inside them."),
    "extended_past_edge": N_("The crop reaches past the edge of the photo; the picture was continued there."),
    "head_levelled": N_("The head was levelled by {degrees}°."),
    "enlarged": N_("The crop was enlarged {factor}× from the photo's own pixels, so it may look soft, above all in print."),
    "passport_mouth_open": N_("Passport rules ask for a neutral expression with the mouth closed, and the mouth is open in this photo. Choose a frame with the mouth closed."),
}
ENLARGED_NOTE_FACTOR = 1.5  # output pixels per frame pixel from which a variant gets the note 'enlarged'
# The analysis' mouth openness (inner-lip gap over mouth width) above which a passport variant gets a note. Closed
# mouths measured under 0.04 on the test portraits, smiles showing teeth 0.14 and more.
PASSPORT_MOUTH_OPEN = 0.08


def variant_notes(recipe: dict, language: str | None = None) -> list[dict]:
    """Return what a person should know about how a variant was framed: codes and messages in `language`."""
    _ = gettext_for(language)
    crop = recipe.get("crop")
    crop = crop if isinstance(crop, dict) else {}
    notes = []
    if crop.get("inside_black_bars"):
        notes.append(("black_bars", {}))
    if crop.get("reaches_past_edge"):
        notes.append(("extended_past_edge", {}))
    if abs(float(crop.get("angle_degrees", 0.0))) >= LEVELLING_NOTE_DEGREES:
        notes.append(("head_levelled", {"degrees": format_decimal(abs(float(crop["angle_degrees"])), 1, language)}))
    enlargement = float(crop.get("output_width", 0)) / max(float(crop.get("width", 0)), 1e-6)
    if crop.get("width") and enlargement >= ENLARGED_NOTE_FACTOR:
        notes.append(("enlarged", {"factor": format_decimal(enlargement, 1, language)}))
    if crop.get("name") in PASSPORT_CROPS and float(crop.get("mouth_open") or 0.0) > PASSPORT_MOUTH_OPEN:
        notes.append(("passport_mouth_open", {}))
    return [{"code": code, "message": _(_VARIANT_NOTES[code]).format(**params)} for code, params in notes]


def variant_file_name(stem: str, variant: VariantSpec, extension: str) -> str:
    """Return `<frame-stem>_<backdrop>_<light>_<crop><extension>`, safe on every file system."""
    return f"{stem}_{_safe_part(variant.backdrop)}_{_safe_part(variant.light)}_{_safe_part(variant.crop)}{extension}"


def _safe_part(name: str) -> str:
    """Make a style or frame name safe for a file name: `color:#1a2b3c` becomes `color-1a2b3c`, `image:/a/b.png` `image-b`."""
    if name.startswith("image:"):
        name = "image-" + Path(name[len("image:") :]).stem
    safe = re.sub(r"[^\w.-]+", "-", name, flags=re.UNICODE)
    return re.sub(r"-{2,}", "-", safe).strip("-.")


def _check_choice(option: str, value, allowed) -> None:
    from .errors import similar_names

    allowed = [str(name) for name in allowed]
    if str(value) not in allowed:
        raise HeadshotError(
            "invalid_option", None, f"{option}={value!r}", option=option, value=value if value != "" else '""', allowed=", ".join(allowed),
            suggestions=similar_names(value, allowed),
        )


def _check_backdrop(name: str) -> None:
    """Accept a listed backdrop, a `color:#RRGGBB` or an `image:PATH` that is a picture; the backdrops module decides."""
    from .backdrops import parse_backdrop
    from .errors import similar_names
    from .styles import BACKDROP_PATTERNS

    try:
        parse_backdrop(name)
    except HeadshotError as error:
        if error.code != "invalid_option":
            raise
        allowed = error.params.get("allowed") or ", ".join(style_names("backdrop"))
        # Only whole names are suggested, not the patterns color:#RRGGBB and image:PATH.
        names = [listed for listed in style_names("backdrop") if listed not in BACKDROP_PATTERNS]
        raise HeadshotError(
            "invalid_option", None, error.detail, option="--backdrop", value=name, allowed=allowed, suggestions=similar_names(name, names)
        ) from error


def _color_in_profile(convert, icc_profile: bytes, rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    return convert(rgb, icc_profile)


def _retouch_settings(request: JobRequest) -> dict:
    """Return the retouch settings per preset in use: the requested one and, for passport crops, 'off'."""
    from .retouch import RetouchSettings

    presets = {request.retouch: RetouchSettings.preset(request.retouch, request.makeup)}
    presets.setdefault("off", RetouchSettings.preset("off", "none"))
    return presets


def _unchanged_lights() -> set[str]:
    """Return the lights that leave the frame's pixels as they are: "original" and the relight module's own."""
    from . import relight

    return {AS_SHOT, *getattr(relight, "UNCHANGED_LIGHTS", ())}


def _settings_dict(settings) -> dict:
    return settings.to_dict() if hasattr(settings, "to_dict") else dict(vars(settings))


def _plan_crops(
    frame: str, info, face: Face, crop_names: list[str], small_copy: np.ndarray | None = None
) -> tuple[dict, tuple[int, int, int, int]]:
    """Plan each crop in frame pixels inside the picture (black bars left out); return the plans and that box.

    The matte of a small copy of the picture marks the top of the hair: `small_copy`, the one the analysis
    kept (8-bit sRGB, upright), or one read now.
    """
    from .analysis_measures import picture_box
    from .crops import plan_crop
    from .matte import person_matte
    from .photo_io import read_preview

    whole = (0, 0, info.width, info.height)
    if not crop_names:
        return {}, whole
    rgb = small_copy if small_copy is not None else read_preview(frame, max_side=PLANNING_LONG_SIDE).rgb
    preview_scale = rgb.shape[1] / info.width

    # The picture in frame pixels, rounded inwards by a preview pixel, where bars and picture may blend.
    left, top, right, bottom = picture_box(rgb)
    picture = whole
    if (left, top, right, bottom) != (0, 0, rgb.shape[1], rgb.shape[0]):
        scale = preview_scale
        picture = (
            0 if left == 0 else min(info.width, math.ceil((left + 1) / scale)),
            0 if top == 0 else min(info.height, math.ceil((top + 1) / scale)),
            info.width if right == rgb.shape[1] else max(0, math.floor((right - 1) / scale)),
            info.height if bottom == rgb.shape[0] else max(0, math.floor((bottom - 1) / scale)),
        )
        log.info("%s: black bars around the picture; crops are planned inside %s", Path(frame).name, picture)
    x0, y0, x1, y1 = picture
    preview_box = tuple(round(value * preview_scale) for value in picture)
    inside = rgb[preview_box[1] : preview_box[3], preview_box[0] : preview_box[2]]
    in_picture = _shifted_face(face, -x0, -y0)
    matte = person_matte(_region_tensor(inside), [in_picture.scaled(preview_scale)])
    plans = {}
    for name in crop_names:
        plan = plan_crop(name, in_picture, x1 - x0, y1 - y0, matte=matte)
        plans[name] = _delivery_size(_replace(plan, center_x=plan.center_x + x0, center_y=plan.center_y + y0))
    return plans, picture


def _delivery_size(plan):
    """Shrink a plan's output to its crop's maximum long side, in whole aspect units; never enlarge it."""
    from .crops import ASPECT_UNITS

    limit = MAX_OUTPUT_LONG_SIDE.get(plan.name)
    if limit is None or max(plan.output_width, plan.output_height) <= limit:
        return plan
    units_x, units_y = ASPECT_UNITS[plan.name]
    unit = limit // max(units_x, units_y)
    return _replace(plan, output_width=units_x * unit, output_height=units_y * unit)


def _apply_crop(image: torch.Tensor, plan) -> torch.Tensor:
    from .crops import apply_crop

    return apply_crop(image, plan)


def _plan_bounds(plan) -> tuple[float, float, float, float]:
    """Return the axis-aligned bounds (left, top, right, bottom) of a crop plan's rotated rectangle."""
    angle = math.radians(plan.angle_degrees)
    cos, sin = abs(math.cos(angle)), abs(math.sin(angle))
    half_width = (plan.width * cos + plan.height * sin) / 2
    half_height = (plan.width * sin + plan.height * cos) / 2
    return plan.center_x - half_width, plan.center_y - half_height, plan.center_x + half_width, plan.center_y + half_height


def _backdrop_recipe(name: str) -> dict:
    """Describe a backdrop as parsed: its kind, and the sRGB colour or picture it uses."""
    if name == AS_SHOT:
        return {"name": name, "kind": AS_SHOT}
    from .backdrops import parse_backdrop

    spec = parse_backdrop(name)
    recipe = {"name": name, "kind": spec.kind}
    if spec.color is not None:
        recipe["color_srgb"] = [round(float(channel), 4) for channel in spec.color]
    if spec.path is not None:
        recipe["path"] = spec.path
    return recipe


def _crop_recipe(name: str, plan, frame_shape, picture: tuple[int, int, int, int] | None = None) -> dict:
    if plan is None:
        return {"name": name, "center_x": frame_shape[1] / 2, "center_y": frame_shape[0] / 2, "angle_degrees": 0.0,
                "width": frame_shape[1], "height": frame_shape[0], "output_width": frame_shape[1],
                "output_height": frame_shape[0], "reaches_past_edge": False}
    numbers = {key: getattr(plan, key) for key in ("center_x", "center_y", "angle_degrees", "width", "height", "output_width", "output_height")}
    recipe = {"name": name}
    recipe.update({key: round(float(value), 3) if isinstance(value, float) else value for key, value in numbers.items()})
    recipe["reaches_past_edge"] = bool(plan.reaches_past_edge)
    if picture is not None:
        recipe["inside_black_bars"] = True
        recipe["picture_box"] = [int(value) for value in picture]
    recipe["max_output_long_side"] = MAX_OUTPUT_LONG_SIDE.get(name)
    return recipe


def _replace(plan, **changes):
    if hasattr(plan, "_replace"):
        return plan._replace(**changes)
    return replace(plan, **changes)


def _encode_variant(path, pixels, alpha, info, output_format, bit_depth, icc_profile, inputs, jpeg_quality, dpi=None):
    """Write a variant atomically and make its thumbnail; runs in the encoder pool."""
    from .contact_sheet import make_thumbnail
    from .photo_io import write_photo

    written = write_photo(
        path,
        pixels,
        alpha,
        like=info,
        format=output_format,
        bit_depth=bit_depth,
        icc_profile=icc_profile,
        inputs=inputs,
        jpeg_quality=jpeg_quality,
        dpi=dpi,
    )
    return Path(written), make_thumbnail(pixels, icc_profile)


def _decode_for_region(frame: str, info, region: "CropRegion", early: Future | None = None):
    """Decode the frame once: reduced by JPEG DCT scaling when the region needs half the resolution or less.

    The reduced path takes 8-bit RGB JPEGs with an RGB profile or none, and keeps their pixels in the
    frame's own colour space. Everything else, and any file the reduced path cannot decode, is decoded
    in full by `read_photo`, or taken from `early`, a `read_photo` of the frame already under way.
    Returns the photo and its pixels' scale relative to the frame.
    """
    from .color import profile_color_space
    from .photo_io import Photo, read_photo

    long_side = max(info.width, info.height)
    needed_side = long_side * max(region.scale_x, region.scale_y)
    reduction = next((factor for factor in DCT_REDUCTIONS if long_side / factor >= needed_side), 1)
    reducible = (
        info.format == "jpeg" and info.bit_depth == 8 and info.mode == "RGB" and not info.has_alpha
        and profile_color_space(info.icc_profile) in (None, "RGB")
    )
    if reducible and reduction > 1:
        pixels = _decode_jpeg_reduced(frame, reduction, info.orientation)
        if pixels is not None:
            if early is not None:
                early.cancel()
            return Photo(info=info, pixels=pixels, alpha=None, icc_profile=info.icc_profile), pixels.shape[1] / info.width
    return (early.result() if early is not None else read_photo(frame)), 1.0


# EXIF orientation → the Pillow transpose that turns the stored pixels upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _decode_jpeg_reduced(frame: str, reduction: int, orientation: int) -> np.ndarray | None:
    """Decode an RGB JPEG at 1/`reduction` size by DCT scaling, upright; None when Pillow cannot decode it.

    The pixels stay as stored, with no colour conversion. `read_photo` has checked nothing yet, so a failure
    here falls back to it, which raises the error a person should read.
    """
    try:
        with Image.open(frame) as image:
            width, height = image.size
            image.draft("RGB", (math.ceil(width / reduction), math.ceil(height / reduction)))
            image.load()
            if image.mode != "RGB":
                return None
            if orientation in _UPRIGHT:
                image = image.transpose(_UPRIGHT[orientation])
            return np.asarray(image)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        log.info("%s: reduced JPEG decode failed (%s); decoding in full", Path(frame).name, error)
        return None


def _output_format(info, requested: str) -> str:
    """Return the format to write: the requested one, or the frame's own (JPEG, PNG, TIFF, WebP or HEIC)."""
    return info.format if requested == "same" else requested


def _output_bit_depth(info, requested: int, output_format: str, frame: str) -> int:
    """Return 8 or 16: the requested depth, else the frame's own, where the format can hold it."""
    if output_format in EIGHT_BIT_FORMATS:
        if requested == 16:
            raise HeadshotError("bit_depth_unsupported", frame, f"bit_depth=16 with {output_format} output", format=output_format.upper())
        return 8
    depth = requested or int(info.bit_depth or 8)
    return 16 if depth > 8 else 8


def _extension(frame: str, output_format: str) -> str:
    """Return the frame's own suffix when the format is unchanged (".jpeg" stays), else the format's usual one."""
    from .photo_io import output_suffix

    usual = output_suffix(output_format)
    suffix = Path(frame).suffix
    same_format = _SUFFIX_FORMATS.get(suffix.lower()) == output_format
    return suffix.lower() if same_format else usual


def _region_tensor(pixels: np.ndarray) -> torch.Tensor:
    """Convert (H, W, 3) uint8 or uint16 pixels to a contiguous (3, H, W) float32 tensor in 0..1 on the device.

    Unlike `device.to_tensor`, whose result is a channels-last view, each colour plane is contiguous here, so
    per-plane work (OpenCV filters, resampling) reads it without another copy.
    """
    from .device import current_device

    maximum = 65535.0 if pixels.dtype == np.uint16 else 255.0
    planes = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
    return planes.to(current_device()).to(torch.float32).div_(maximum)


def _integer_pixels(image: torch.Tensor, bit_depth: int) -> np.ndarray:
    """Convert a (3, H, W) tensor in 0..1 to (H, W, 3) uint8 or uint16 pixels, rounded to nearest.

    8-bit results on the CPU go through OpenCV's saturating conversion, several times faster than
    `device.to_pixels`, with the same values.
    """
    if bit_depth != 8 or image.device.type != "cpu" or image.dtype != torch.float32:
        return to_pixels(image, bit_depth)
    planes = [cv2.convertScaleAbs(cv2.max(plane, 0.0), alpha=255.0) for plane in image.detach().numpy()]
    return cv2.merge(planes)


# -- faces from the analysis ------------------------------------------------------------


def _shifted_face(face: Face, dx: float, dy: float) -> Face:
    """Return a face moved by (dx, dy) pixels, as seen in a window of the image it was found in."""
    offset = np.array([dx, dy], dtype=np.float32)
    landmarks = None
    if face.landmarks is not None:
        landmarks = face.landmarks.astype(np.float32).copy()
        landmarks[:, :2] += offset
    x, y, width, height = face.box
    return Face(box=(x + dx, y + dy, width, height), score=face.score, keypoints=np.asarray(face.keypoints, dtype=np.float32) + offset, landmarks=landmarks)


def _analysis_faces(analysis) -> list[Face]:
    """Return the analysed faces as `Face`s in frame pixels, the main subject first."""
    records = list(getattr(analysis, "faces", None) or [])
    subject = getattr(analysis, "subject", None)
    if isinstance(subject, int) and 0 <= subject < len(records):
        records.insert(0, records.pop(subject))
    return [_face_from_record(record) for record in records]


def _face_from_record(record) -> Face:
    """Build a `Face` from an analysis record; keypoints come from the detector, else the mesh, else the box."""
    if isinstance(record, Face):
        return record
    x, y, width, height = (float(value) for value in record.box)
    landmarks = None if record.landmarks is None else np.asarray(record.landmarks, dtype=np.float32)
    if getattr(record, "keypoints", None) is not None:
        keypoints = np.asarray(record.keypoints, dtype=np.float32)
    elif landmarks is not None:
        mesh = landmarks[:, :2]
        keypoints = np.stack(
            [
                mesh[faces_module.RIGHT_IRIS_CENTER],
                mesh[faces_module.LEFT_IRIS_CENTER],
                mesh[faces_module.NOSE_TIP],
                (mesh[faces_module.UPPER_LIP_INNER] + mesh[faces_module.LOWER_LIP_INNER]) / 2,
                mesh[faces_module.RIGHT_FACE_EDGE],
                mesh[faces_module.LEFT_FACE_EDGE],
            ]
        )
    else:
        # Typical positions inside a detector box; only used when the mesh did not fit.
        relative = np.array([[0.32, 0.38], [0.68, 0.38], [0.5, 0.6], [0.5, 0.78], [0.05, 0.45], [0.95, 0.45]], dtype=np.float32)
        keypoints = np.array([x, y], dtype=np.float32) + relative * np.array([width, height], dtype=np.float32)
    return Face(box=(x, y, width, height), score=float(record.score), keypoints=keypoints.astype(np.float32), landmarks=landmarks)
