#!/usr/bin/env python3
"""Register the trained model and deploy it to the configured target: ``python deploy-vertex.py --help``."""

import sys

from vertex_edge.cli.deploy import main

if __name__ == "__main__":
    sys.exit(main())
