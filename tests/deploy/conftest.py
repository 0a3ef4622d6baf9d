"""The deploy fixtures (a project with a trained tiny model; deploy-vertex.py and edge.py in-process)
and the monitoring ones (a model folder with its reference profile)."""

from tests.monitoring.conftest import prepared_model, project  # noqa: F401
from tests.registry.conftest import deploy_cli, deploy_project, edge_cli  # noqa: F401
