"""Google Cloud adapters: the one Google-error translator (:mod:`~vertex_edge.gcp.errors`), the
client bundle and storage-client factory (:mod:`~vertex_edge.gcp.clients`), resource names,
the GCS object store, kubectl/helm processes, the MongoDB password in Secret Manager, and the
port-forwards to Sacred on GKE.

Nothing here imports ``google.cloud`` at import time; clients are built at the edge (the CLI)
in one :class:`~vertex_edge.gcp.clients.GcpClients` bundle and injected.
"""
