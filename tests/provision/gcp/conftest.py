"""The gcp fakes' fixtures (tests/gcp/conftest.py), for the provisioning tests."""

from tests.gcp.conftest import cloud, fake_dvc, kube, make_env

__all__ = ["cloud", "fake_dvc", "kube", "make_env"]
