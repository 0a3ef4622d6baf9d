"""The gcp target: Google Cloud clients, the GCS object store, provisioning steps, teardown
and port-forwards into the GKE cluster that runs Sacred (MongoDB + Omniboard).

Nothing here imports ``google.cloud`` at import time; clients are built at the edge (the CLI)
in one :class:`~vertex_edge.gcp.clients.GcpClients` bundle and injected.
"""
