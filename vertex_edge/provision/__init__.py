"""Idempotent provisioning: each step is get -> create if missing -> report."""
