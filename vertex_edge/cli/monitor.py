"""``edge.py monitor``: compare captured predictions with the model's reference (exit 0 healthy,
1 drift), and ``monitor simulate`` / ``feedback`` / ``vertex``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from vertex_edge.cli.context import AppContext
from vertex_edge.deploy.wiring import serving_model_dir
from vertex_edge.errors import UsageError
from vertex_edge.gcp.clients import load_credentials
from vertex_edge.gcp.files import Files
from vertex_edge.layout import LocalLayout
from vertex_edge.monitoring import vertex as vm
from vertex_edge.monitoring.feedback import FeedbackStore, parse_feedback
from vertex_edge.monitoring.run import MonitoringPaths, load_reference, parse_since, read_card, run_monitor
from vertex_edge.monitoring.simulate import SHIFTS, answer_some, capture_enabled, load_test_images, send, shifted
from vertex_edge.monitoring.sinks import make_sink
from vertex_edge.monitoring.thresholds import load_monitor_params
from vertex_edge.registry import served_version

monitor_app = typer.Typer(
    help="Monitor the deployed model: drift and OOD report over captured predictions (exit 0 healthy, 1 drift).",
    invoke_without_command=True,
)
DEFAULT_MODEL_DIR = "models/fashion-mnist"
PREDICT_URL = "http://127.0.0.1:8080/predict"


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")


def _paths(app_ctx: AppContext) -> MonitoringPaths:
    return MonitoringPaths.for_config(app_ctx.config(), app_ctx.repo)


def _model_dir(app_ctx: AppContext, model_dir: Optional[str]) -> str:
    """The model whose reference is used: --model-dir, else the version the endpoint serves (the
    local registry's folder, or on gcp the Vertex AI version's artifact folder in the bucket),
    else the pipeline's model folder."""
    if model_dir:
        return model_dir
    config = app_ctx.config()
    if config.target == "local":
        registry = LocalLayout.from_config(config, app_ctx.repo).registry / config.model.name
        if (registry / "endpoint.json").is_file():
            return str(served_version(registry / "endpoint.json")[1])
    elif config.target == "gcp":
        serving = serving_model_dir(config, app_ctx.repo)
        if serving:
            return serving
    return str(app_ctx.repo / DEFAULT_MODEL_DIR)


@monitor_app.callback()
def monitor(
    ctx: typer.Context,
    since: Annotated[
        Optional[str], typer.Option("--since", help="Records from then on: 24h, 7d or an ISO date/time.")
    ] = None,
    last: Annotated[
        Optional[int], typer.Option("--last", "-n", help="The newest N records (default: params.yaml monitor.window).")
    ] = None,
    model_dir: Annotated[
        Optional[str], typer.Option("--model-dir", help="Model folder (or gs://) whose reference profile to use.")
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="Report folder (default: <storage root>/monitoring/<model>/reports/<time>)."),
    ] = None,
    records: Annotated[
        Optional[str], typer.Option("--records", help="Where the captured records are (default: by target).")
    ] = None,
    params_file: Annotated[Path, typer.Option("--params", help="params.yaml with the monitor section.")] = Path(
        "params.yaml"
    ),
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="Include records of other model versions.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON summary.")] = False,
) -> None:
    """Compare a window of captured predictions with the model's reference: class distribution,
    confidence, input features, embedding, OOD rate and, with feedback labels, accuracy.
    Writes report.html and summary.json; exit code 0 when healthy, 1 on drift."""
    if ctx.invoked_subcommand is not None:
        return
    app_ctx: AppContext = ctx.obj
    paths = _paths(app_ctx)
    if records:
        paths = MonitoringPaths(records, paths.feedback, paths.reports)
    params = load_monitor_params(params_file if params_file.is_absolute() else app_ctx.repo / params_file)
    result = run_monitor(
        paths=paths, model_dir=_model_dir(app_ctx, model_dir), params=params, files=Files(),
        since=parse_since(since), last=last, out=out, all_versions=all_versions,
    )  # fmt: skip
    verdict = result.verdict
    console = app_ctx.console
    if as_json:
        typer.echo(result.summary_path.read_text())
    else:
        colour = {"healthy": "green", "drift": "red"}.get(verdict.status, "yellow")
        console.print(
            f"[bold {colour}]{verdict.status}[/]: {len(result.window):,} records of model {escape(result.model_version)} "
            f"({escape(str(result.window.first))} .. {escape(str(result.window.last))}), {len(verdict.checks)} checks"
        )
        for check in verdict.drifted:
            console.print(
                f"  [red]drift[/] {escape(check.name)}: p={check.p_value:.2g} (< {check.threshold:.2g}), "
                f"effect {check.effect:.3f} (min {check.min_effect:g}) {escape(check.detail)}"
            )
        if verdict.ood_rate is not None:
            console.print(
                f"  OOD flagged: {100 * verdict.ood_rate:.1f} % (calibrated {100 * (verdict.expected_ood_rate or 0):.1f} %)"
            )
        if verdict.labelled:
            console.print(f"  feedback: {verdict.labelled} labels, accuracy {100 * (verdict.accuracy or 0):.1f} %")
        for note in verdict.notes:
            console.print(f"  [dim]{escape(note)}[/]")
        console.print(f"  report: {escape(str(result.report_path))}\n  summary: {escape(str(result.summary_path))}")
    if verdict.drift:
        raise typer.Exit(1)


@monitor_app.command("simulate")
def simulate(
    ctx: typer.Context,
    shift: Annotated[str, typer.Option("--shift", help=f"One of: {', '.join(SHIFTS)}.")] = "none",
    count: Annotated[int, typer.Option("--count", min=1, max=100_000, help="Images to send.")] = 500,
    fraction: Annotated[
        Optional[float], typer.Option("--fraction", min=0.0, max=1.0, help="Share of the images shifted.")
    ] = None,
    url: Annotated[
        str, typer.Option("--url", envvar="EDGE_PREDICT_URL", help="The prediction server's predict URL.")
    ] = PREDICT_URL,
    batch: Annotated[int, typer.Option("--batch", min=1, max=512, help="Instances per request.")] = 1,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Requests in flight.")] = 4,
    feedback_rate: Annotated[
        float,
        typer.Option("--feedback-rate", min=0.0, max=1.0, help="Share of predictions answered with the true label."),
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (images, shift, answers).")] = 0,
) -> None:
    """Send real Fashion-MNIST test images through the running prediction server with a shift
    (none, imbalance, inverted, dim, rotate, noise, photos); optionally record feedback labels."""
    app_ctx: AppContext = ctx.obj
    images, labels = load_test_images(app_ctx.repo)
    batch_images, truth = shifted(images, labels, shift, count, fraction=fraction, seed=seed)
    sent = send(url, batch_images, truth, batch=batch, concurrency=concurrency)
    flagged = sum(1 for s in sent if s.ood_flag)
    known = [s for s in sent if s.true_label >= 0]
    right = sum(1 for s in known if s.class_id == s.true_label)
    console = app_ctx.console
    console.print(
        f"sent {len(sent):,} images ({escape(shift)}) to {escape(url)}: {flagged:,} flagged as not clothing; "
        f"{right:,} of {len(known):,} clothing images classified right"
    )
    if capture_enabled(url) is False:
        console.print(
            "  [yellow]the server does not capture predictions: 'edge.py monitor' will find no records "
            "(edge.yaml monitoring.capture, or EDGE_CAPTURE_URI for a server started by hand)[/]"
        )
    if feedback_rate > 0:
        config = app_ctx.config()
        store = FeedbackStore(make_sink(_paths(app_ctx).feedback, kind="feedback"), labels=_labels(app_ctx))
        try:
            answered = answer_some(
                sent, feedback_rate,
                lambda s: store.add(parse_feedback(s.request_id, s.true_label, store.labels, instance=s.instance, predicted=s.class_id)),
                seed=seed,
            )  # fmt: skip
        finally:
            store.close()
        console.print(f"  recorded {answered:,} feedback labels for model {escape(config.model.name)}")


def _labels(app_ctx: AppContext) -> list[str]:
    return list(read_card(_model_dir(app_ctx, None), Files()).labels)


@monitor_app.command("feedback")
def feedback(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request id the prediction answered with.")],
    label: Annotated[str, typer.Argument(help="The correct class: its name (e.g. 'Bag') or index.")],
    instance: Annotated[int, typer.Option("--instance", min=0, help="The instance within the request.")] = 0,
) -> None:
    """Record the correct label of one prediction (what the web app's "Was this right?" does)."""
    app_ctx: AppContext = ctx.obj
    labels = _labels(app_ctx)
    value: object = int(label) if label.isdigit() else label
    store = FeedbackStore(make_sink(_paths(app_ctx).feedback, kind="feedback"), labels=labels)
    try:
        record = store.add(parse_feedback(request_id, value, labels, instance=instance))
    finally:
        store.close()
    app_ctx.console.print(f"recorded: {escape(record['request_id'])} is {escape(record['label'])}")


@monitor_app.command("vertex")
def vertex(
    ctx: typer.Context,
    model: Annotated[
        Optional[str], typer.Option("--model", help="Vertex model resource name (projects/.../models/ID).")
    ] = None,
    model_version_id: Annotated[
        str, typer.Option("--model-version-id", help="The Vertex model version monitored.")
    ] = "1",
    model_dir: Annotated[
        Optional[str], typer.Option("--model-dir", help="Model folder whose reference rows are the baseline.")
    ] = None,
    email: Annotated[Optional[list[str]], typer.Option("--email", help="Alert e-mail address (repeatable).")] = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create the monitor and its daily schedule in Vertex AI.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", envvar="EDGE_YES", help="Do not ask before creating.")] = False,
) -> None:
    """The Vertex AI Model Monitoring (v2) definition over the captured records: printed as JSON;
    with --create (gcp target) the baseline is uploaded and the monitor and schedule are created."""
    app_ctx: AppContext = ctx.obj
    config = app_ctx.config()
    gcp = config.require_gcp("Vertex AI Model Monitoring")
    paths = _paths(app_ctx)
    files = Files()
    folder = _model_dir(app_ctx, model_dir)
    profile, version = load_reference(folder, files)
    base = f"gs://{gcp.bucket_name}/monitoring/{config.model.name}"
    definition = vm.build_definition(
        project=gcp.project, region=gcp.region, model_name=config.model.name,
        model=model or f"projects/{gcp.project}/locations/{gcp.region}/models/{config.model.name}",
        model_version_id=model_version_id, records_uri=paths.records,
        reference_uri=f"{base}/reference/{version}.jsonl", output_uri=f"{base}/vertex-monitoring",
        components=int(profile.meta.get("components", 0)), emails=email or [],
    )  # fmt: skip
    if not create:
        typer.echo(json.dumps(definition.to_dict(), indent=2, default=str))
        return
    if not yes and not (
        app_ctx.interactive and typer.confirm(f"create {definition.monitor_name} and its daily schedule?")
    ):
        raise UsageError("not created: pass --yes to create the monitor without asking")
    from google.cloud import aiplatform_v1beta1 as v  # deferred: see above

    credentials, _ = load_credentials()
    options = {"api_endpoint": f"{gcp.region}-aiplatform.googleapis.com"}
    files.write_bytes(definition.reference_uri, vm.reference_jsonl(profile))
    names = vm.create(
        definition,
        monitoring_client=v.ModelMonitoringServiceClient(credentials=credentials, client_options=options),
        schedule_client=v.ScheduleServiceClient(credentials=credentials, client_options=options),
    )
    app_ctx.console.print(f"created {escape(names[0])}\n  schedule {escape(names[1])}")
