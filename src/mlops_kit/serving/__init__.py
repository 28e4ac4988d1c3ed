"""The REST API serving ``models:/<name>@champion``: load -> validate -> score -> answer -> log.

``loader`` (load the champion from the MLflow registry), ``inputs`` (request models generated from
that model), ``scoring``, ``answers``, then the prediction log in ``mlops_kit.store``; the endpoints
are in ``routes/``, the app in ``app``, the uvicorn process in ``server``. ``accelerator`` is an
optional fast path, used only where it reproduces the model.
"""
