"""What every CLI command gets: the repository, the config (loaded once), the console."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from vertex_edge.config import CONFIG_FILE, EdgeConfig, load_config
from vertex_edge.errors import UsageError


@dataclass
class AppContext:
    repo: Path
    config_path: Path
    console: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))
    _config: EdgeConfig | None = None

    def __post_init__(self) -> None:
        for console in (self.console, self.err):
            if not console.is_terminal:
                console.width = 160  # tables in logs and pipes: do not squeeze to 80 columns

    @classmethod
    def create(cls, repo: Path | None, config: Path | None) -> AppContext:
        repo = (repo or Path.cwd()).resolve()
        if not repo.is_dir():
            raise UsageError(f"--repo {repo} is not a folder")
        config_path = config if config is not None else repo / CONFIG_FILE
        if not config_path.is_absolute():
            config_path = (repo / config_path).resolve()
        return cls(repo=repo, config_path=config_path)

    def config(self) -> EdgeConfig:
        """``edge.yaml``, loaded and validated once per command."""
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def set_config(self, config: EdgeConfig) -> None:
        self._config = config

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("CI", "") == ""
