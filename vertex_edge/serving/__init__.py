"""The prediction server, on Vertex AI's custom-container contract.

Run it with ``python -m vertex_edge.serving`` (what the container and ``edge.py serve`` run).
It reads only the ``AIP_*`` environment variables Vertex AI sets (plus optional ``EDGE_*``
tuning knobs, see :mod:`vertex_edge.serving.settings`), loads ``model.onnx`` and
``model_card.json`` from ``AIP_STORAGE_URI`` (a folder or ``gs://bucket/path``) in the app's
lifespan, and answers ``{"instances": [...]}`` with ONNX Runtime, batching concurrent requests
into one model call.

Modules: :mod:`.app` (assembly, lifespan, health and capture routes), :mod:`.request_layer`
(the access log, the predict route answered before FastAPI), :mod:`.predict` (the predict
handler: deadline, decoding in the bounded pool, the answer with request id and OOD fields),
:mod:`.body` (reading and parsing the body, pixel budgets), :mod:`.problems` (error bodies),
:mod:`.batching` (the model thread), :mod:`.model` (loading and verifying the model),
:mod:`.reload` (following the local endpoint, ``serving-status.json``), :mod:`.settings`,
:mod:`.schemas` (OpenAPI), :mod:`.state`, :mod:`.logs`, :mod:`.jsonio`, :mod:`.asgi`.
Connection limits and timeouts are :mod:`vertex_edge.httpserver`'s.

Importing this package does no work, and nothing under it imports TensorFlow, Keras, DVC or
Sacred: the container does not even install them.
"""
