"""``modelport bench``: a concurrency sweep against any Open Inference Protocol server (ours or Triton).

``signature`` (the model's inputs from its metadata, random or ``.npz`` data), ``request_bodies`` (one
request as REST binary/JSON or a framed gRPC message), ``endpoints`` (metadata and statistics over HTTP or
gRPC), ``load_plan`` (the request of every step, checked once with a real client), ``generators`` (wrk and
h2load, installed on demand) and ``python_generator`` (the in-process fallback), ``results`` (the run's
record, its JSON and table), ``plot`` (matplotlib, the ``bench`` extra), ``command`` (the click command).
"""

__all__: list[str] = []
