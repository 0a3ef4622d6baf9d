"""The Vertex AI Model Monitoring (v2) definition for the deployed model, built offline.

Vertex AI's model monitoring handles tabular data only, so what it watches is the capture's
tabular record per sampled request (:mod:`vertex_edge.monitoring.capture`): the input summary
features, the embedding components and the OOD score as numeric features, the predicted label
and its confidence as prediction outputs. :func:`build_definition` makes, without any network:

* a ``ModelMonitor`` (v1beta1): the reference model (the Vertex model and version), the baseline
  (the held-out reference rows as JSONL in the bucket, written by :func:`reference_jsonl`), the
  schema, the drift spec (Jensen-Shannon divergence for numbers, L-infinity for the label), the
  alert config (e-mail and Cloud Logging) and the output folder;
* a ``Schedule`` that runs a ``ModelMonitoringJob`` daily on the last day's captured records
  (``gs://<bucket>/monitoring/<model>/records/dt=*``).

:func:`create` creates both (only when asked: ``edge.py monitor vertex --create``). The Vertex AI
SDK is imported in the functions (deferred: it takes seconds to import).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from vertex_edge.gcp.errors import google_call
from vertex_edge.monitoring.features import FEATURES
from vertex_edge.monitoring.profile import ReferenceProfile

NUMERIC_METRIC = "jensen_shannon_divergence"
CATEGORICAL_METRIC = "l_infinity"


@dataclass(frozen=True)
class VertexMonitorDefinition:
    parent: str  # projects/<project>/locations/<region>
    monitor_id: str
    model_monitor: Any  # aiplatform_v1beta1.ModelMonitor
    schedule: Any  # aiplatform_v1beta1.Schedule
    reference_uri: str

    @property
    def monitor_name(self) -> str:
        return f"{self.parent}/modelMonitors/{self.monitor_id}"

    def to_dict(self) -> dict[str, Any]:
        """Both messages as JSON-able dicts (what ``--dry-run`` prints)."""
        return {
            "parent": self.parent,
            "model_monitor_id": self.monitor_id,
            "model_monitor": type(self.model_monitor).to_dict(self.model_monitor),
            "schedule": type(self.schedule).to_dict(self.schedule),
            "reference_uri": self.reference_uri,
        }


def numeric_features(components: int) -> list[str]:
    return [*FEATURES, *(f"emb_{i}" for i in range(components)), "ood_score"]


def monitor_id(model_name: str) -> str:
    """A resource id Vertex accepts: lower-case letters, digits and '-', at most 63 characters."""
    return re.sub(r"[^a-z0-9-]", "-", f"{model_name}-monitor".lower())[:63].strip("-")


def build_definition(
    *,
    project: str,
    region: str,
    model: str,
    model_version_id: str,
    model_name: str,
    records_uri: str,
    reference_uri: str,
    output_uri: str,
    components: int,
    emails: list[str] | None = None,
    numeric_threshold: float = 0.1,
    categorical_threshold: float = 0.1,
    cron: str = "TZ=UTC 0 6 * * *",
) -> VertexMonitorDefinition:
    """The definition; ``model`` is the Vertex model resource name (``projects/.../models/ID``)."""
    from google.cloud import aiplatform_v1beta1 as v  # deferred: see the module docstring

    gcs = v.ModelMonitoringInput.ModelMonitoringDataset.ModelMonitoringGcsSource
    field = v.ModelMonitoringSchema.FieldSchema
    numeric = numeric_features(components)
    parent = f"projects/{project}/locations/{region}"
    ident = monitor_id(model_name)
    objective = v.ModelMonitoringObjectiveSpec.TabularObjective(
        feature_drift_spec=v.ModelMonitoringObjectiveSpec.DataDriftSpec(
            features=numeric,
            numeric_metric_type=NUMERIC_METRIC,
            default_numeric_alert_condition=v.ModelMonitoringAlertCondition(threshold=numeric_threshold),
        ),
        prediction_output_drift_spec=v.ModelMonitoringObjectiveSpec.DataDriftSpec(
            features=["label", "confidence"],
            categorical_metric_type=CATEGORICAL_METRIC,
            numeric_metric_type=NUMERIC_METRIC,
            default_categorical_alert_condition=v.ModelMonitoringAlertCondition(threshold=categorical_threshold),
            default_numeric_alert_condition=v.ModelMonitoringAlertCondition(threshold=numeric_threshold),
        ),
    )
    notification = v.ModelMonitoringNotificationSpec(
        email_config=v.ModelMonitoringNotificationSpec.EmailConfig(user_emails=list(emails or [])),
        enable_cloud_logging=True,
    )
    output = v.ModelMonitoringOutputSpec(gcs_base_directory=v.GcsDestination(output_uri_prefix=output_uri))
    model_monitor = v.ModelMonitor(
        display_name=ident,
        model_monitoring_target=v.ModelMonitor.ModelMonitoringTarget(
            vertex_model=v.ModelMonitor.ModelMonitoringTarget.VertexModelSource(
                model=model, model_version_id=model_version_id
            )
        ),
        training_dataset=v.ModelMonitoringInput(
            columnized_dataset=v.ModelMonitoringInput.ModelMonitoringDataset(
                gcs_source=gcs(gcs_uri=reference_uri, format_=gcs.DataFormat.JSONL)
            )
        ),
        model_monitoring_schema=v.ModelMonitoringSchema(
            feature_fields=[field(name=name, data_type="float") for name in numeric],
            prediction_fields=[
                field(name="label", data_type="categorical"),
                field(name="confidence", data_type="float"),
            ],
        ),
        tabular_objective=objective,
        notification_spec=notification,
        output_spec=output,
    )
    job = v.ModelMonitoringJob(
        display_name=f"{ident}-daily",
        model_monitoring_spec=v.ModelMonitoringSpec(
            objective_spec=v.ModelMonitoringObjectiveSpec(
                tabular_objective=objective,
                target_dataset=v.ModelMonitoringInput(
                    columnized_dataset=v.ModelMonitoringInput.ModelMonitoringDataset(
                        gcs_source=gcs(gcs_uri=f"{records_uri.rstrip('/')}/dt=*", format_=gcs.DataFormat.JSONL),
                        timestamp_field="time",
                    ),
                    time_offset=v.ModelMonitoringInput.TimeOffset(offset="0d", window="1d"),
                ),
            ),
            notification_spec=notification,
            output_spec=output,
        ),
    )
    schedule = v.Schedule(
        display_name=f"{ident}-daily",
        cron=cron,
        max_concurrent_run_count=1,
        create_model_monitoring_job_request=v.CreateModelMonitoringJobRequest(
            parent=f"{parent}/modelMonitors/{ident}", model_monitoring_job=job
        ),
    )
    return VertexMonitorDefinition(parent, ident, model_monitor, schedule, reference_uri)


def reference_jsonl(profile: ReferenceProfile) -> bytes:
    """The profile's reference rows in the capture's record schema (the Vertex baseline)."""
    lines = []
    labels = profile.labels
    for i in range(len(profile.class_id)):
        row: dict[str, Any] = {
            "label": labels[int(profile.class_id[i])],
            "confidence": round(float(profile.confidence[i]), 5),
            "ood_score": round(float(profile.ood_score[i]), 4),
        }
        row.update({name: round(float(v), 4) for name, v in zip(FEATURES, profile.features[i], strict=True)})
        row.update({f"emb_{j}": round(float(v), 4) for j, v in enumerate(np.asarray(profile.embedding[i]))})
        lines.append(json.dumps(row, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def create(definition: VertexMonitorDefinition, *, monitoring_client: Any, schedule_client: Any) -> tuple[str, str]:
    """Create the model monitor, then its daily schedule; returns their resource names."""
    from google.cloud import aiplatform_v1beta1 as v  # deferred: see the module docstring

    operation = google_call(
        f"cannot create the model monitor {definition.monitor_id}",
        lambda: monitoring_client.create_model_monitor(
            request=v.CreateModelMonitorRequest(
                parent=definition.parent, model_monitor=definition.model_monitor, model_monitor_id=definition.monitor_id
            )
        ),
    )
    monitor = google_call("the model monitor was not created", lambda: operation.result(timeout=600))
    schedule = google_call(
        "cannot create the monitoring schedule",
        lambda: schedule_client.create_schedule(parent=definition.parent, schedule=definition.schedule),
    )
    return str(monitor.name), str(schedule.name)


def request_logging_update(
    endpoint_name: str, *, project: str, sampling_rate: float, destination: str | None = None
) -> tuple[Any, Any]:
    """``(endpoint, update_mask)`` for ``EndpointServiceClient.update_endpoint`` that turns the
    endpoint's request-response logging on at ``sampling_rate`` (off at 0), into BigQuery: given only
    the project, Vertex AI creates the dataset ``logging_<endpoint>_<id>`` and its table; an
    existing ``destination`` (``bq://...``) is kept."""
    from google.cloud import aiplatform_v1 as v1  # deferred: see the module docstring
    from google.protobuf import field_mask_pb2

    config = v1.PredictRequestResponseLoggingConfig(
        enabled=sampling_rate > 0,
        sampling_rate=sampling_rate,
        bigquery_destination=v1.BigQueryDestination(output_uri=destination or f"bq://{project}"),
    )
    endpoint = v1.Endpoint(name=endpoint_name, predict_request_response_logging_config=config)
    return endpoint, field_mask_pb2.FieldMask(paths=["predict_request_response_logging_config"])


def ensure_request_logging(endpoint_service: Any, endpoint_name: str, *, project: str, sampling_rate: float) -> str:
    """Set the endpoint's request-response logging to ``sampling_rate`` (0: off) unless it is so
    already; says what it found or did (``edge.yaml`` ``monitoring.request_response_logging``)."""
    current = google_call(
        "cannot read the endpoint's request-response logging",
        lambda: endpoint_service.get_endpoint(name=endpoint_name),
    )
    config = getattr(current, "predict_request_response_logging_config", None)
    enabled = bool(getattr(config, "enabled", False))
    rate = float(getattr(config, "sampling_rate", 0.0) or 0.0)
    destination = str(getattr(getattr(config, "bigquery_destination", None), "output_uri", "") or "") or None
    wanted = sampling_rate > 0
    shown = f"on at a sampling rate of {sampling_rate:g}" if wanted else "off"
    if enabled == wanted and (not wanted or abs(rate - sampling_rate) < 1e-9):
        return f"request-response logging is {shown} already" + (f" ({destination})" if wanted and destination else "")
    endpoint, mask = request_logging_update(
        endpoint_name, project=project, sampling_rate=sampling_rate, destination=destination
    )
    google_call(
        "cannot set the endpoint's request-response logging",
        lambda: endpoint_service.update_endpoint(endpoint=endpoint, update_mask=mask),
    )
    where = destination or f"bq://{project} (a logging_* dataset Vertex AI creates)"
    return f"request-response logging turned {shown}" + (f", into {where}" if wanted else "")
