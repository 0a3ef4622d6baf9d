from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic import make_dataset


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic data (300 train, 100 test) through the real prepare step."""
    from vertex_edge.data.manifest import load_manifest
    from vertex_edge.data.prepare import prepare
    from vertex_edge.fsutil import atomic_write_json

    root = tmp_path_factory.mktemp("data")
    manifest = load_manifest(make_dataset(root / "raw", n_train=300, n_test=100))
    report = prepare(manifest, root / "raw", root / "prepared")
    atomic_write_json(
        root / "prepared" / "meta.json", {k: report[k] for k in ("labels", "image_shape", "data_version")}
    )
    return root / "prepared"
