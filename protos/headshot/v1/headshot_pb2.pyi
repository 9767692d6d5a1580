from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_IN_PROGRESS: _ClassVar[JobState]
    JOB_STATE_COMPLETED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELED: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_IN_PROGRESS: JobState
JOB_STATE_COMPLETED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELED: JobState

class JobRequest(_message.Message):
    __slots__ = ("frames", "origin", "top", "retouch", "makeup", "backdrops", "lights", "crops", "output_format", "bit_depth", "jpeg_quality", "language", "output_dir")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    RETOUCH_FIELD_NUMBER: _ClassVar[int]
    MAKEUP_FIELD_NUMBER: _ClassVar[int]
    BACKDROPS_FIELD_NUMBER: _ClassVar[int]
    LIGHTS_FIELD_NUMBER: _ClassVar[int]
    CROPS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    BIT_DEPTH_FIELD_NUMBER: _ClassVar[int]
    JPEG_QUALITY_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedScalarFieldContainer[str]
    origin: str
    top: int
    retouch: str
    makeup: str
    backdrops: _containers.RepeatedScalarFieldContainer[str]
    lights: _containers.RepeatedScalarFieldContainer[str]
    crops: _containers.RepeatedScalarFieldContainer[str]
    output_format: str
    bit_depth: int
    jpeg_quality: int
    language: str
    output_dir: str
    def __init__(self, frames: _Optional[_Iterable[str]] = ..., origin: _Optional[str] = ..., top: _Optional[int] = ..., retouch: _Optional[str] = ..., makeup: _Optional[str] = ..., backdrops: _Optional[_Iterable[str]] = ..., lights: _Optional[_Iterable[str]] = ..., crops: _Optional[_Iterable[str]] = ..., output_format: _Optional[str] = ..., bit_depth: _Optional[int] = ..., jpeg_quality: _Optional[int] = ..., language: _Optional[str] = ..., output_dir: _Optional[str] = ...) -> None: ...

class JobId(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobHandle(_message.Message):
    __slots__ = ("job_id", "state", "position")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    position: int
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., position: _Optional[int] = ...) -> None: ...

class UploadChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    data: FrameData
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., data: _Optional[_Union[FrameData, _Mapping]] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("request", "frames")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    request: JobRequest
    frames: _containers.RepeatedCompositeFieldContainer[FrameHeader]
    def __init__(self, request: _Optional[_Union[JobRequest, _Mapping]] = ..., frames: _Optional[_Iterable[_Union[FrameHeader, _Mapping]]] = ...) -> None: ...

class FrameHeader(_message.Message):
    __slots__ = ("name", "size", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    sha256: str
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class FrameData(_message.Message):
    __slots__ = ("frame_index", "data")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    data: bytes
    def __init__(self, frame_index: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class Reason(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "sequence", "time", "attempt", "queued", "stage_started", "progress", "frame_scored", "variant_ready", "completed", "failed", "canceled", "started")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    STAGE_STARTED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FRAME_SCORED_FIELD_NUMBER: _ClassVar[int]
    VARIANT_READY_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    sequence: int
    time: _timestamp_pb2.Timestamp
    attempt: int
    queued: Queued
    stage_started: StageStarted
    progress: Progress
    frame_scored: FrameScored
    variant_ready: VariantReady
    completed: Completed
    failed: Failed
    canceled: Canceled
    started: Started
    def __init__(self, job_id: _Optional[str] = ..., sequence: _Optional[int] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., queued: _Optional[_Union[Queued, _Mapping]] = ..., stage_started: _Optional[_Union[StageStarted, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., frame_scored: _Optional[_Union[FrameScored, _Mapping]] = ..., variant_ready: _Optional[_Union[VariantReady, _Mapping]] = ..., completed: _Optional[_Union[Completed, _Mapping]] = ..., failed: _Optional[_Union[Failed, _Mapping]] = ..., canceled: _Optional[_Union[Canceled, _Mapping]] = ..., started: _Optional[_Union[Started, _Mapping]] = ...) -> None: ...

class Queued(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class Started(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StageStarted(_message.Message):
    __slots__ = ("stage",)
    STAGE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    def __init__(self, stage: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("stage", "fraction")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    stage: str
    fraction: float
    def __init__(self, stage: _Optional[str] = ..., fraction: _Optional[float] = ...) -> None: ...

class FrameScored(_message.Message):
    __slots__ = ("frame", "score", "reasons")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    frame: str
    score: float
    reasons: _containers.RepeatedCompositeFieldContainer[Reason]
    def __init__(self, frame: _Optional[str] = ..., score: _Optional[float] = ..., reasons: _Optional[_Iterable[_Union[Reason, _Mapping]]] = ...) -> None: ...

class VariantReady(_message.Message):
    __slots__ = ("variant_id", "recipe_json", "width", "height", "size_bytes", "frame", "score")
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPE_JSON_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    variant_id: str
    recipe_json: str
    width: int
    height: int
    size_bytes: int
    frame: str
    score: float
    def __init__(self, variant_id: _Optional[str] = ..., recipe_json: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., size_bytes: _Optional[int] = ..., frame: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Completed(_message.Message):
    __slots__ = ("variant_count", "output_dir")
    VARIANT_COUNT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    variant_count: int
    output_dir: str
    def __init__(self, variant_count: _Optional[int] = ..., output_dir: _Optional[str] = ...) -> None: ...

class Failed(_message.Message):
    __slots__ = ("code", "message", "detail", "log_path", "file")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    LOG_PATH_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    detail: str
    log_path: str
    file: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., detail: _Optional[str] = ..., log_path: _Optional[str] = ..., file: _Optional[str] = ...) -> None: ...

class Canceled(_message.Message):
    __slots__ = ("interrupted",)
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    interrupted: bool
    def __init__(self, interrupted: bool = ...) -> None: ...

class Variant(_message.Message):
    __slots__ = ("variant_id", "file_name", "recipe_json", "width", "height", "size_bytes", "sha256", "frame", "score")
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    RECIPE_JSON_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    variant_id: str
    file_name: str
    recipe_json: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    frame: str
    score: float
    def __init__(self, variant_id: _Optional[str] = ..., file_name: _Optional[str] = ..., recipe_json: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., frame: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "state", "origin", "created", "started", "finished", "attempts", "position", "error", "variants", "request")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    origin: str
    created: _timestamp_pb2.Timestamp
    started: _timestamp_pb2.Timestamp
    finished: _timestamp_pb2.Timestamp
    attempts: int
    position: int
    error: Failed
    variants: _containers.RepeatedCompositeFieldContainer[Variant]
    request: JobRequest
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., origin: _Optional[str] = ..., created: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., started: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., finished: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[int] = ..., position: _Optional[int] = ..., error: _Optional[_Union[Failed, _Mapping]] = ..., variants: _Optional[_Iterable[_Union[Variant, _Mapping]]] = ..., request: _Optional[_Union[JobRequest, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("states", "origin", "limit")
    STATES_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[JobState]
    origin: str
    limit: int
    def __init__(self, states: _Optional[_Iterable[_Union[JobState, str]]] = ..., origin: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobStatus]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobStatus, _Mapping]]] = ...) -> None: ...

class VariantRef(_message.Message):
    __slots__ = ("job_id", "variant_id", "format")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    VARIANT_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    variant_id: str
    format: str
    def __init__(self, job_id: _Optional[str] = ..., variant_id: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("data", "file_name", "media_type", "total_size", "sha256")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    file_name: str
    media_type: str
    total_size: int
    sha256: str
    def __init__(self, data: _Optional[bytes] = ..., file_name: _Optional[str] = ..., media_type: _Optional[str] = ..., total_size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class SaveVariantRequest(_message.Message):
    __slots__ = ("variant", "path", "overwrite")
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    variant: VariantRef
    path: str
    overwrite: bool
    def __init__(self, variant: _Optional[_Union[VariantRef, _Mapping]] = ..., path: _Optional[str] = ..., overwrite: bool = ...) -> None: ...

class SaveVariantResponse(_message.Message):
    __slots__ = ("path", "size_bytes", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    size_bytes: int
    sha256: str
    def __init__(self, path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DaemonInfo(_message.Message):
    __slots__ = ("version", "device", "engines", "queue_length", "running_job_id", "pid", "address", "data_dir", "log_path", "max_queue")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    RUNNING_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    LOG_PATH_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_FIELD_NUMBER: _ClassVar[int]
    version: str
    device: str
    engines: _containers.RepeatedScalarFieldContainer[str]
    queue_length: int
    running_job_id: str
    pid: int
    address: str
    data_dir: str
    log_path: str
    max_queue: int
    def __init__(self, version: _Optional[str] = ..., device: _Optional[str] = ..., engines: _Optional[_Iterable[str]] = ..., queue_length: _Optional[int] = ..., running_job_id: _Optional[str] = ..., pid: _Optional[int] = ..., address: _Optional[str] = ..., data_dir: _Optional[str] = ..., log_path: _Optional[str] = ..., max_queue: _Optional[int] = ...) -> None: ...

class ListStylesRequest(_message.Message):
    __slots__ = ("language",)
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    language: str
    def __init__(self, language: _Optional[str] = ...) -> None: ...

class Style(_message.Message):
    __slots__ = ("name", "kind", "title", "description", "json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    title: str
    description: str
    json: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., json: _Optional[str] = ...) -> None: ...

class ListStylesResponse(_message.Message):
    __slots__ = ("styles",)
    STYLES_FIELD_NUMBER: _ClassVar[int]
    styles: _containers.RepeatedCompositeFieldContainer[Style]
    def __init__(self, styles: _Optional[_Iterable[_Union[Style, _Mapping]]] = ...) -> None: ...
