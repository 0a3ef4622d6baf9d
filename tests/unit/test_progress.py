"""Training feedback: a bar with images/s and ETA on a terminal, nothing extra off it, no banner."""

from __future__ import annotations

import io

import pytest

from vertex_edge.training.progress import not_banner, progress_callback, render


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_render() -> None:
    assert render(3, 15, 412, 844, 5120.4, 7.2) == "epoch 3/15 [###########.............] 412/844  5,120 img/s  ETA 0:07"
    assert render(1, 2, 0, 0, 0.0, 4000).endswith("ETA 1h06m")


def test_no_bar_off_a_terminal() -> None:
    assert progress_callback(batch_size=64, epochs=3, stream=io.StringIO()) is None


def test_the_import_banner_is_dropped_and_anything_else_kept() -> None:
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796212039.328251    4188 port.cc:153] oneDNN custom operations are on. You may see\n"
        "E0000 something real went wrong\n"
    )
    assert not_banner(text) == ["E0000 something real went wrong"]


@pytest.mark.slow  # imports Keras
def test_the_bar_on_a_terminal() -> None:
    term = Terminal()
    bar = progress_callback(batch_size=32, epochs=2, stream=term)
    assert bar is not None
    bar.set_params({"steps": 10, "epochs": 2})
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(4)
    bar.on_train_batch_end(9)
    shown = term.getvalue()
    assert "epoch 1/2 [" in shown and "10/10" in shown and "img/s" in shown and "ETA 0:00" in shown
    bar.clear()
    assert term.getvalue().endswith("\r\x1b[2K")
    size = len(term.getvalue())
    bar.clear()  # nothing drawn: nothing written
    assert len(term.getvalue()) == size
