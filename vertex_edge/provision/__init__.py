"""Idempotent provisioning: each step is get -> create if missing -> report.

:mod:`~vertex_edge.provision.engine` (plan, apply, apply under the state lock) is shared by the
local target (:mod:`~vertex_edge.provision.local`) and the gcp target
(:mod:`vertex_edge.provision.gcp`, one module per resource, setup and teardown side by side);
both end with the state-file step (:mod:`~vertex_edge.provision.state_file`).
"""
