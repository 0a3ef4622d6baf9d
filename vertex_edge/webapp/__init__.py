"""The web app in front of the deployed model (``services/webapp``).

* :mod:`.settings` - settings from the environment, validated at start-up
* :mod:`.client` - one prediction-client interface: HTTP (local server) or Vertex AI
* :mod:`.app` - ``create_app()``: the page, ``POST /api/predict``, ``POST /api/feedback``, ``GET /healthz``
* :mod:`.limits` - what one upload may cost: admission, the decode pool, the deadline
* :mod:`.upload` - the form read into memory, capped while it streams
* :mod:`.feedback` - "Was this right?" answers to the feedback store
* :mod:`.failures` - every failure in words a user can act on
* :mod:`.server` - run it with uvicorn (``python edge.py webapp`` or ``python -m vertex_edge.webapp``)

Importing this package does no work.
"""
