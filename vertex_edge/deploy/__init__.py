"""``python deploy-vertex.py``: register the trained model and point an endpoint at it.

* :mod:`~vertex_edge.deploy.candidate` - the model leaving the lab, judged by the figures that name
  its sha256 against the committed gate and the champion; the
  :class:`~vertex_edge.deploy.candidate.Deployer` interface and what it reports.
* :mod:`~vertex_edge.serving_status` - what a running ``edge.py serve`` says it serves
  (deploy waits for it; ``endpoint describe`` shows it).
* :mod:`~vertex_edge.deploy.local_endpoint` - the local target: registry + traffic map on disk.
* :mod:`~vertex_edge.deploy.vertex_endpoint` - the gcp target: the Vertex AI Endpoint, switched
  without downtime and reported done only when Vertex AI shows it; :mod:`~vertex_edge.deploy.vertex_registry`
  its Model Registry side (versions, upload, a version checked before it takes traffic,
  through :mod:`~vertex_edge.deploy.remote_model`); :mod:`~vertex_edge.deploy.traffic` holds the
  split arithmetic.
* :mod:`~vertex_edge.deploy.wiring` - picks and builds the deployer for ``edge.yaml``'s target.
"""
