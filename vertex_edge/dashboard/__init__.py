"""The experiments UI (``python edge.py experiments ui``): a read-only page over any Sacred store.

* :mod:`.service` - the runs table, one run, a comparison (shared with ``edge.py experiments``)
* :mod:`.table` - the runs table, kept row by row between requests (a thousand runs, polled)
* :mod:`.lineage` - which registry version each run made, and its endpoint traffic share
* :mod:`.reproduce` - the exact commands that reproduce a run
* :mod:`.text` - figures as text, the same on the pages and in the terminal
* :mod:`.app`, :mod:`.routes`, :mod:`.views`, :mod:`.assets` - ``create_app()``: pages, JSON API, static files
* :mod:`.server` - run it with uvicorn

Importing this package does no work; only the app's modules import FastAPI (the CLI imports
them when ``experiments ui`` runs).
"""
