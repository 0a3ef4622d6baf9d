"""The CLI's terminal output: the spinner while a step runs."""

from __future__ import annotations

import io

from rich.console import Console

from vertex_edge.cli.ui import StepSpinner


def test_spinner_on_a_terminal_and_progress_lines_off_it() -> None:
    terminal = io.StringIO()
    spinner = StepSpinner(Console(file=terminal, force_terminal=True, width=100))
    spinner.start("GKE Autopilot cluster")
    spinner.update("cluster edge-cluster is PROVISIONING")
    spinner.stop()

    plain = io.StringIO()
    spinner = StepSpinner(Console(file=plain, width=100), interval=0.0)
    spinner.start("GKE Autopilot cluster")
    spinner.update("cluster edge-cluster is PROVISIONING")
    spinner.stop()
    assert "... GKE Autopilot cluster: cluster edge-cluster is PROVISIONING (0 min)" in plain.getvalue()
