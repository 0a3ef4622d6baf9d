"""Experiment tracking with Sacred: :mod:`~vertex_edge.tracking.target` decides where runs go
(the file store, MongoDB, or nowhere); :mod:`~vertex_edge.tracking.runs` reads them back."""
