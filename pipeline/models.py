"""The mediapipe graphs built once per process, with their native start-up chatter kept off the terminal.

mediapipe's C++ side writes glog and TensorFlow Lite lines straight to file
descriptor 2 when a graph is built and first run. No environment variable of
mediapipe 0.10.21 turns them off, so they are caught while a graph is built and
warmed up.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading

import numpy as np


@contextlib.contextmanager
def quiet_native_logs():
    """Send what native code writes to stderr into a temporary file; replay it if the block raises.

    NOTE: file descriptor 2 is process-wide, so another thread's stderr output
    during the block is caught too; it only runs while a graph is built.
    """
    if os.environ.get("HEADSHOT_NATIVE_LOGS"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            caught.seek(0)
            sys.stderr.write(caught.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def build_graph(factory, warm_up_shape: tuple[int, int] = (64, 64)):
    """Build a mediapipe solution with `factory()` and run it once on a blank image, quietly."""
    with quiet_native_logs():
        graph = factory()
        graph.process(np.zeros((*warm_up_shape, 3), dtype=np.uint8))
    return graph


class PersonSegmenter:
    """mediapipe's selfie segmentation (general model, 256×256 input); calls are serialised."""

    def __init__(self):
        import mediapipe as mp

        # The general model draws hair and shoulders better than the landscape one.
        self._model = build_graph(lambda: mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0))
        self._lock = threading.Lock()

    def person_mask(self, rgb: np.ndarray) -> np.ndarray:
        """Return a float32 mask 0..1 (1 = person) at the size of the 8-bit RGB image."""
        with self._lock:
            result = self._model.process(np.ascontiguousarray(rgb))
        return np.array(result.segmentation_mask, dtype=np.float32, copy=True)


_shared_segmenter: PersonSegmenter | None = None
_segmenter_lock = threading.Lock()


def shared_segmenter() -> PersonSegmenter:
    """Return the process-wide person segmenter, building it on first use."""
    global _shared_segmenter
    with _segmenter_lock:
        if _shared_segmenter is None:
            _shared_segmenter = PersonSegmenter()
        return _shared_segmenter
