"""Benchmark: the `prepare` stage on the full Fashion-MNIST data (target <= 1 s).

    python -m benchmarks.prepare_bench [--mirror DIR] [--repeat 5]

Reads the four .gz files from EDGE_DATA_MIRROR (or --mirror) and times `prepare()` end to end:
decompress, validate, write both .npz files, compute the data report and data version.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from vertex_edge.data.manifest import load_manifest
    from vertex_edge.data.prepare import prepare

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mirror", type=Path, default=Path(os.environ.get("EDGE_DATA_MIRROR", "data/fashion-mnist")))
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    manifest = load_manifest(Path("data/fashion-mnist.yaml"))
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            started = time.perf_counter()
            report = prepare(manifest, args.mirror, Path(tmp))
            times.append(time.perf_counter() - started)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"prepare on {report['train']['count']}+{report['test']['count']} images, {args.repeat} runs")
    print(f"  median {statistics.median(times):.3f} s   best {min(times):.3f} s   worst {max(times):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
