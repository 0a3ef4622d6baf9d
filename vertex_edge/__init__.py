"""vertex-edge: MLOps on Google Cloud that also runs whole on one laptop.

Importing this package does no work: no clients, no model loading, no environment reads.
Heavy dependencies (TensorFlow, Keras, DVC, Sacred, Google Cloud SDKs) are imported lazily
inside the functions that need them, so the prediction server never imports TensorFlow.
"""

__version__ = "0.1.0"
