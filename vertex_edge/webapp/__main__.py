"""``python -m vertex_edge.webapp``: the container's entry point. Settings come from the
environment (see :mod:`vertex_edge.webapp.settings`); invalid settings exit with status 2."""

from __future__ import annotations

import sys

from vertex_edge.errors import EdgeError
from vertex_edge.webapp.logs import configure_logging
from vertex_edge.webapp.server import serve
from vertex_edge.webapp.settings import WebappSettings


def main() -> int:
    try:
        settings = WebappSettings.from_env()
        configure_logging(settings.log_level, settings.log_format)
        serve(settings)
    except EdgeError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
