"""The prediction server, on Vertex AI's custom-container contract.

Run it with ``python -m vertex_edge.serving`` (what the container and ``edge.py serve`` run).
It reads only the ``AIP_*`` environment variables Vertex AI sets (plus optional ``EDGE_*``
tuning knobs, see :mod:`vertex_edge.serving.settings`), loads ``model.onnx`` and
``model_card.json`` from ``AIP_STORAGE_URI`` (a folder or ``gs://bucket/path``) in the app's
lifespan, and answers ``{"instances": [...]}`` with ONNX Runtime, batching concurrent requests
into one model call.

Importing this package does no work, and nothing under it imports TensorFlow, Keras, DVC or
Sacred: the container does not even install them.
"""
