"""Training feedback on the terminal, and nothing else.

* :func:`progress_callback` - a Keras callback drawing one progress bar per epoch (batches done,
  images/s, ETA) on a terminal; off a terminal it is not used and each epoch is one clean line
  (the stage prints those; call the bar's ``clear()`` before printing one). It is handed to
  :func:`vertex_edge.training.fit.train` through ``extra_callbacks``.
* :func:`quiet_tensorflow` - TensorFlow's start-up banner is noise for a training run: its C++
  INFO/WARNING logs (``TF_CPP_MIN_LOG_LEVEL=2`` unless the caller set it) and the oneDNN notice
  that ``import tensorflow`` prints twice through absl before its log is initialised (dropped while
  importing; anything else it prints is shown).

Keras and TensorFlow are imported inside the functions: only a training process pays for them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import MutableMapping
from typing import IO, Any

TF_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"
#: lines of TensorFlow's import banner that say nothing about this run
BANNER = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized",
    "To enable the following instructions",
    "cpu_feature_guard.cc",
)
REFRESH_S = 0.25


def quiet_tensorflow(env: MutableMapping[str, str] | None = None) -> None:
    """Keep TensorFlow's start-up noise off the terminal (call before anything imports it)."""
    env = os.environ if env is None else env
    env.setdefault(TF_LOG_ENV, "2")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401 - imported here, with its banner captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = not_banner(captured.read().decode("utf-8", "replace"))
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")  # what TensorFlow said that is not its banner
                sys.stderr.flush()


def not_banner(text: str) -> list[str]:
    """The lines of ``text`` that are not TensorFlow's import banner."""
    return [line for line in text.splitlines() if line.strip() and not any(noise in line for noise in BANNER)]


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def render(epoch: int, epochs: int, done: int, steps: int, images_per_s: float, eta_s: float, width: int = 24) -> str:
    """One progress line: ``epoch 3/15 [#########...........] 412/844  5,120 img/s  ETA 0:07``."""
    filled = int(width * done / steps) if steps else 0
    bar = "#" * filled + "." * (width - filled)
    return f"epoch {epoch}/{epochs} [{bar}] {done}/{steps}  {images_per_s:,.0f} img/s  ETA {_duration(eta_s)}"


def progress_callback(*, batch_size: int, epochs: int, stream: IO[str] | None = None) -> Any | None:
    """A Keras callback drawing the bar on ``stream`` (default stderr), or None off a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None
    import keras  # deferred: see the module docstring

    class Progress(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.started = 0.0
            self.shown = 0.0
            self.drawn = False

        def clear(self) -> None:
            """Erase the bar (before a line is printed, so it starts at the left margin)."""
            if self.drawn:
                stream.write("\r\x1b[2K")
                stream.flush()
                self.drawn = False

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch + 1
            self.started = time.monotonic()
            self.shown = 0.0

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            now = time.monotonic()
            steps = int((self.params or {}).get("steps") or 0)
            done = min(batch + 1, steps) if steps else batch + 1
            if now - self.shown < REFRESH_S and done < steps:
                return
            self.shown = now
            elapsed = max(now - self.started, 1e-6)
            eta = (steps - done) * elapsed / done if steps else 0.0
            line = render(self.epoch, epochs, done, steps or done, done * batch_size / elapsed, eta)
            stream.write("\r\x1b[2K" + line)
            stream.flush()
            self.drawn = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.clear()

        def on_train_end(self, logs: dict | None = None) -> None:
            self.clear()

    return Progress()
