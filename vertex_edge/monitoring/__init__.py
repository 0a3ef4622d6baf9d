"""Monitoring the deployed model: capture, out-of-distribution flag, drift, feedback, reports.

What runs where (the prediction server imports only the first group: numpy, the standard
library and the GCS client; the server image has no matplotlib or onnx):

* in the prediction server: :mod:`.layout` (the model's ``monitor`` output, read per model
  load), :mod:`.capture` (the bounded, non-blocking capture queue and its writer thread) and
  :mod:`.sinks` (rotating local files with retention; date-partitioned JSONL in GCS);
* at training time: :mod:`.prepare` (adds the :mod:`.embedding` and :mod:`.graph` outputs to
  ``model.onnx`` and writes the :mod:`.profile` of held-out images, with the :mod:`.ood` detector
  calibrated to a stated false-positive rate; :mod:`.features` are the input summaries);
* in ``edge.py monitor``: :mod:`.records` and :mod:`.feedback` (reading back), :mod:`.drift`
  (the checks, with :mod:`.stats`), :mod:`.report` (HTML and JSON), :mod:`.run`,
  :mod:`.simulate` (the traffic simulator, with :mod:`.nonclothing`), :mod:`.vertex` (the Vertex
  AI Model Monitoring v2 definition, the endpoint's request-response logging) and
  :mod:`.thresholds` (``params.yaml`` ``monitor``);
* for the CLI, deploy and the web app: :mod:`.settings` (``edge.yaml`` ``monitoring``, the capture
  environment of a server, the web app's privacy line).
"""
