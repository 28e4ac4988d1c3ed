"""A served model, below both the API and batch scoring: load -> validate -> score.

``loader`` loads a registered model (``models:/<name>@<alias>``) or a package as an immutable
Champion; ``inputs`` holds the request models generated from its signature and fitted encoder;
``score`` turns validated columns into class probabilities; ``accelerator`` is an optional numpy
fast path, used only where it reproduces the model; ``errors`` words a refusal for a person.
The web package (``serving/``) and batch scoring (``batch/``) both stand on these.
"""
