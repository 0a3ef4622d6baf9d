"""The web app in front of the deployed model (``services/webapp``).

* :mod:`.settings` - settings from the environment, validated at start-up
* :mod:`.client` - one prediction-client interface: HTTP (local server) or Vertex AI
* :mod:`.app` - ``create_app()``: the page, ``POST /api/predict``, ``GET /healthz``
* :mod:`.server` - run it with uvicorn (``python edge.py webapp`` or ``python -m vertex_edge.webapp``)

Importing this package does no work.
"""
