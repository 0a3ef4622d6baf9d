"""The command lines: ``edge.py`` (:mod:`vertex_edge.cli.edge`) and ``deploy-vertex.py``
(:mod:`vertex_edge.cli.deploy`), over :mod:`vertex_edge.cli.app` (shared settings and the one
error-to-exit-code mapping). Only this package prints; the library logs and raises typed errors.
"""
