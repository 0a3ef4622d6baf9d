"""DVC stage `prepare`: IDX .gz files -> data/prepared/{train,test}.npz + meta.json, and a data report.

    python -m steps.prepare --manifest data/fashion-mnist.yaml --raw-dir data/fashion-mnist \
        --out-dir data/prepared --report metrics/data.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from steps import exit_process, run_step
from vertex_edge.data.manifest import load_manifest
from vertex_edge.data.prepare import PreparedMeta, prepare, write_meta
from vertex_edge.fsutil import atomic_write_json


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steps.prepare", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, required=True, help="dataset manifest (names, counts, labels)")
    p.add_argument("--raw-dir", type=Path, required=True, help="folder holding the IDX .gz files")
    p.add_argument("--out-dir", type=Path, required=True, help="output folder for the .npz arrays")
    p.add_argument("--report", type=Path, required=True, help="data report (DVC metrics, JSON)")
    return p


def run(args: argparse.Namespace) -> None:
    manifest = load_manifest(args.manifest)
    report = prepare(manifest, args.raw_dir, args.out_dir)
    write_meta(args.out_dir, PreparedMeta.model_validate(report))
    atomic_write_json(args.report, report)
    print(
        f"prepare: train {report['train']['count']}, test {report['test']['count']} images; "
        f"data version {report['data_version'][:8]}"
    )


def main(argv: list[str] | None = None) -> int:
    return run_step(build_parser(), run, argv)


if __name__ == "__main__":
    exit_process(main())
