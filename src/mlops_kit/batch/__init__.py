"""Batch scoring: whole tables through the API's own validation and scoring.

``validate`` says, per row, why the API would refuse it (or nothing); ``columns`` is the output
contract both engines write; ``local`` streams a file or a folder of parts through the champion in
bounded memory; ``run`` loads the model once, picks an engine and records the batch as an MLflow run.
"""
