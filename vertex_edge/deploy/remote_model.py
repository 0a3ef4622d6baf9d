"""A model folder at a ``gs://`` URI (or a path) checked against its card before it takes traffic:
the same rule as the local registry's (:meth:`vertex_edge.artifact.ModelArtifact.verify`, every
file the card lists, by sha256), on a copy downloaded to a temporary folder.

The Vertex deployer calls it on a registry version's artifact folder before deploying it, moving
traffic to it or rolling back onto it; a corrupt one is refused naming the file by its URI.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from vertex_edge.artifact import CARD_FILE, ModelArtifact, ModelCard
from vertex_edge.errors import DataError
from vertex_edge.gcp.files import Files, join


def verify_model_folder(files: Files, uri: str) -> ModelCard:
    """The folder's card, once every file it lists matches its sha256; :class:`DataError` naming
    the file (by its URI) otherwise."""
    uri = uri.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="edge-verify-") as tmp:
        folder = Path(tmp)
        try:
            files.download(join(uri, CARD_FILE), folder / CARD_FILE)
            artifact = ModelArtifact.read(folder, source=uri)
            for name in artifact.card.artifacts:
                if name == Path(name).name and files.exists(join(uri, name)):
                    files.download(join(uri, name), folder / name)
            artifact.verify()
        except DataError as exc:
            raise DataError(exc.message.replace(str(folder), uri), hint=exc.hint) from None
        return artifact.card
