"""The Vertex AI Model Monitoring v2 definition, built offline; created only on request (fakes)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from vertex_edge.monitoring.features import FEATURES
from vertex_edge.monitoring.profile import PROFILE_FILE, ReferenceProfile
from vertex_edge.monitoring.settings import MonitoringConfig, privacy_line
from vertex_edge.monitoring.vertex import build_definition, create, monitor_id, reference_jsonl, request_logging_update

MODEL = "projects/p-123456/locations/us-central1/models/42"


@pytest.fixture(scope="module")
def definition():  # noqa: ANN201
    return build_definition(
        project="p-123456", region="us-central1", model=MODEL, model_version_id="3", model_name="fashion-mnist",
        records_uri="gs://b/monitoring/fashion-mnist/records", reference_uri="gs://b/monitoring/fashion-mnist/reference/v.jsonl",
        output_uri="gs://b/monitoring/fashion-mnist/vertex-monitoring", components=8, emails=["ops@example.com"],
        numeric_threshold=0.15,
    )  # fmt: skip


def test_the_model_monitor_fields(definition) -> None:  # noqa: ANN001
    monitor = definition.model_monitor
    assert definition.parent == "projects/p-123456/locations/us-central1"
    assert definition.monitor_name.endswith("/modelMonitors/fashion-mnist-monitor")
    target = monitor.model_monitoring_target.vertex_model
    assert (target.model, target.model_version_id) == (MODEL, "3")
    baseline = monitor.training_dataset.columnized_dataset.gcs_source
    assert baseline.gcs_uri.endswith("reference/v.jsonl") and baseline.format_.name == "JSONL"
    features = [f.name for f in monitor.model_monitoring_schema.feature_fields]
    assert features == [*FEATURES, *(f"emb_{i}" for i in range(8)), "ood_score"]
    assert {f.data_type for f in monitor.model_monitoring_schema.feature_fields} == {"float"}
    assert [(f.name, f.data_type) for f in monitor.model_monitoring_schema.prediction_fields] == [
        ("label", "categorical"), ("confidence", "float")]  # fmt: skip
    drift = monitor.tabular_objective.feature_drift_spec
    assert drift.numeric_metric_type == "jensen_shannon_divergence"
    assert drift.default_numeric_alert_condition.threshold == 0.15
    output_drift = monitor.tabular_objective.prediction_output_drift_spec
    assert output_drift.categorical_metric_type == "l_infinity" and list(output_drift.features) == [
        "label",
        "confidence",
    ]
    assert list(monitor.notification_spec.email_config.user_emails) == ["ops@example.com"]
    assert monitor.notification_spec.enable_cloud_logging
    assert monitor.output_spec.gcs_base_directory.output_uri_prefix.endswith("/vertex-monitoring")


def test_the_daily_schedule_reads_the_captured_records(definition) -> None:  # noqa: ANN001
    schedule = definition.schedule
    assert schedule.cron == "TZ=UTC 0 6 * * *" and schedule.max_concurrent_run_count == 1
    request = schedule.create_model_monitoring_job_request
    assert request.parent == definition.monitor_name
    target = request.model_monitoring_job.model_monitoring_spec.objective_spec.target_dataset
    assert target.columnized_dataset.gcs_source.gcs_uri == "gs://b/monitoring/fashion-mnist/records/dt=*"
    assert target.columnized_dataset.timestamp_field == "time"
    assert (target.time_offset.offset, target.time_offset.window) == ("0d", "1d")
    assert json.dumps(definition.to_dict(), default=str)


def test_monitor_ids_are_valid_resource_ids() -> None:
    assert monitor_id("Fashion_MNIST") == "fashion-mnist-monitor"


def test_the_baseline_rows_have_the_record_schema(prepared_model: Path) -> None:
    profile = ReferenceProfile.read(prepared_model / PROFILE_FILE)
    rows = [json.loads(line) for line in reference_jsonl(profile).splitlines()]
    assert len(rows) == len(profile.class_id)
    assert {"label", "confidence", "ood_score", *FEATURES, "emb_0"} <= set(rows[0])


def test_create_calls_the_api_only_when_asked(definition) -> None:  # noqa: ANN001
    calls = []
    monitoring = SimpleNamespace(
        create_model_monitor=lambda request: (
            calls.append(("monitor", request))
            or SimpleNamespace(result=lambda timeout: SimpleNamespace(name=definition.monitor_name))
        )
    )
    schedules = SimpleNamespace(
        create_schedule=lambda parent, schedule: calls.append(("schedule", parent)) or SimpleNamespace(name="s/1")
    )
    assert create(definition, monitoring_client=monitoring, schedule_client=schedules) == (
        definition.monitor_name,
        "s/1",
    )
    assert calls[0][1].model_monitor_id == "fashion-mnist-monitor" and calls[1] == ("schedule", definition.parent)


@pytest.mark.parametrize(("rate", "enabled"), [(0.25, True), (0.0, False)])
def test_request_response_logging_follows_the_sampling_rate(rate: float, enabled: bool) -> None:
    name = "projects/p-123456/locations/us-central1/endpoints/7"
    endpoint, mask = request_logging_update(name, project="p-123456", sampling_rate=rate)
    config = endpoint.predict_request_response_logging_config
    assert (endpoint.name, config.enabled, config.sampling_rate) == (name, enabled, rate)
    assert config.bigquery_destination.output_uri == "bq://p-123456"
    assert list(mask.paths) == ["predict_request_response_logging_config"]


def test_edge_yaml_monitoring_section_and_the_privacy_line() -> None:
    config = MonitoringConfig.model_validate({"sample_rate": 0.5})
    assert config.server_env("gs://b/r") == {
        "EDGE_CAPTURE_URI": "gs://b/r", "EDGE_CAPTURE_SAMPLE_RATE": "0.5", "EDGE_CAPTURE_FLUSH_S": "10"}  # fmt: skip
    assert config.server_env("/data/r") == {"EDGE_CAPTURE_URI": "/data/r", "EDGE_CAPTURE_SAMPLE_RATE": "0.5"}
    assert MonitoringConfig(capture=False).server_env("gs://b/r") == {}
    with pytest.raises(ValidationError):
        MonitoringConfig.model_validate({"sample_rate": 2})
    with pytest.raises(ValidationError):
        MonitoringConfig.model_validate({"sampling": 1})
    line = privacy_line()
    assert "never stored" in line and "Was this right?" in line and "28" not in line
    assert "28\u00d728" in privacy_line(model_input_logged=True)
