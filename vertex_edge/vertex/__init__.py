"""Training on Vertex AI: one trainer entrypoint that runs anywhere, and the jobs that run it.

* :mod:`~vertex_edge.vertex.task` - THE trainer entrypoint (``python -m vertex_edge.vertex.task``)
  run inside the training container. It honours what Vertex AI gives a custom job:
  ``AIP_MODEL_DIR``, ``AIP_CHECKPOINT_DIR``, ``AIP_TENSORBOARD_LOG_DIR`` and, with several
  replicas, ``TF_CONFIG``/``CLUSTER_SPEC`` (:mod:`~vertex_edge.vertex.contract`).
* :mod:`~vertex_edge.vertex.job` - the CustomJob spec built from ``edge.yaml`` and ``params.yaml``.
* :mod:`~vertex_edge.vertex.submit` - submit, wait with progress, cancel, download the outputs.
* :mod:`~vertex_edge.vertex.local_jobs` - the ``vertex-local`` backend: the same entrypoint run here as
  a subprocess with the same environment contract.
* :mod:`~vertex_edge.vertex.stage` - the ``train`` stage of ``dvc-step2.yaml`` (Sacred tracking and
  the same outputs as the local stage).

Nothing here imports TensorFlow, Keras or Google Cloud libraries at import time.
"""
