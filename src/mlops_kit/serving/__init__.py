"""The REST API serving ``models:/<name>@champion``: validate -> score -> answer -> log.

The model, its request models and scoring come from ``mlops_kit.scoring`` (shared with batch
scoring); here are the web parts: ``answers`` (the JSON bodies), the endpoints in ``routes/``, the
app in ``app``, the uvicorn process in ``server``, MLflow's scoring protocol in
``mlflow_protocol`` and the challenger in ``shadow``. Nothing imports this package but the CLI.
"""
