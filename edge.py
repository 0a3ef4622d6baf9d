#!/usr/bin/env python3
"""vertex-edge command line: ``python edge.py --help``."""

import sys

from vertex_edge.cli.edge import main

if __name__ == "__main__":
    sys.exit(main())
