"""Run every benchmark script in this folder (`make bench`), one after another."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = sorted(p.stem for p in Path(__file__).parent.glob("*.py") if p.stem not in ("__init__", "run_all"))


def main() -> int:
    failed = []
    for name in SCRIPTS:
        print(f"=== benchmarks.{name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
