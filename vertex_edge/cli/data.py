"""``edge.py data seed``: fetch Fashion-MNIST, verify it, put it under DVC and push it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from vertex_edge import dvc
from vertex_edge.cli.context import AppContext
from vertex_edge.data.fetch import needs_tracking, seed_files
from vertex_edge.data.manifest import DEFAULT_MANIFEST, load_manifest
from vertex_edge.errors import NotProvisionedError

data_app = typer.Typer(help="Dataset commands.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


@data_app.command("seed")
def seed(
    ctx: typer.Context,
    mirror: Annotated[
        Optional[Path],
        typer.Option(
            "--mirror",
            envvar="EDGE_DATA_MIRROR",
            help="Copy the files from this folder instead of downloading (offline machines, CI).",
        ),
    ] = None,
    manifest: Annotated[
        Optional[Path],
        typer.Option(
            "--manifest",
            envvar="EDGE_DATASET_MANIFEST",
            help="Dataset manifest (names, sources, checksums); default data/fashion-mnist.yaml.",
        ),
    ] = None,
    push: Annotated[bool, typer.Option("--push/--no-push", help="Push the data to the DVC remote.")] = True,
) -> None:
    """Fetch the four Fashion-MNIST files from the official hosts (or --mirror / EDGE_DATA_MIRROR),
    verify each checksum, track them with DVC and push them to the DVC remote. Re-running is a no-op."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    app_ctx: AppContext = ctx.obj
    repo = app_ctx.repo
    app_ctx.config()  # edge.yaml must exist and be valid
    if not dvc.is_initialised(repo) or dvc.default_remote(repo) is None:
        raise NotProvisionedError("no DVC default remote is configured", hint="run 'python edge.py setup' first")
    manifest_path = manifest or (repo / DEFAULT_MANIFEST)
    spec = load_manifest(manifest_path if manifest_path.is_absolute() else repo / manifest_path)
    dest = repo / spec.dir
    if mirror is not None and not mirror.is_absolute():
        mirror = (Path(os.getcwd()) / mirror).resolve()

    console = app_ctx.console
    console.print(
        f"dataset {spec.name}: {len(spec.files)} files -> {spec.dir}" + (f" (mirror {mirror})" if mirror else "")
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        tasks: dict[str, int] = {}

        def on_progress(f, done: int, total: int | None) -> None:  # noqa: ANN001
            if f.name not in tasks:
                tasks[f.name] = progress.add_task(f.name, total=total)
            progress.update(tasks[f.name], completed=done, total=total)

        def on_file(outcome) -> None:  # noqa: ANN001
            verb = {"kept": "already present", "copied": "copied", "fetched": "downloaded"}[outcome.action]
            how = f", verified by {outcome.matched} md5" if outcome.matched else ""
            progress.console.print(f"  {outcome.name:<28} {verb}{how}")

        seed_files(spec, dest, mirror=mirror, on_progress=on_progress, on_file=on_file)

    files = [dest / f.name for f in spec.files]
    changed = needs_tracking(files)
    rel = [str(p.relative_to(repo)) for p in changed]
    if rel:
        dvc.add(repo, rel)
        console.print(f"tracked with DVC: {', '.join(Path(r).name + '.dvc' for r in rel)} (commit them to git)")
    else:
        console.print("DVC tracking: up to date")
    if push:
        targets = [str(p.relative_to(repo)) + ".dvc" for p in files]
        out = dvc.push(repo, targets)
        last = [line for line in out.strip().splitlines() if line.strip()]
        console.print(f"DVC push: {last[-1] if last else 'done'}")
