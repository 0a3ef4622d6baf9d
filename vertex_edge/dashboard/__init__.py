"""The experiments UI (``python edge.py experiments ui``): a read-only page over any Sacred store.

* :mod:`.lineage` - which registry version each run made, and its endpoint traffic share
* :mod:`.service` - the runs table, one run, a comparison (shared with ``edge.py experiments``)
* :mod:`.reproduce` - the exact commands that reproduce a run
* :mod:`.app` - ``create_app()``: the pages and the JSON API
* :mod:`.server` - run it with uvicorn

Importing this package does no work; only :mod:`.app` and :mod:`.server` import FastAPI.
"""
