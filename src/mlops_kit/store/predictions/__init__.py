"""The prediction log: every served prediction, written off the request path to a SQL database.

    request ──submit(entry)──▶ queue ──▶ one writer thread ──▶ INSERT … (one transaction per batch)
                                                                   │
    monitoring, capture ◀── read_predictions / LogWindow ◀── SELECT ┘

A request only puts one ``LogEntry`` (its records, the model's answers and the threshold it
flagged them with) on a queue and returns. One writer thread inserts whatever is queued in one
transaction: one writer means no lost or interleaved rows however many requests arrive at once,
and the queue means a slow disk never delays a response. Readers ask the database for a window.

The database is the store's (``store.db``): SQLite in the workspace by default, in WAL mode so
readers such as the monitoring notebook never block the writer, or any SQLAlchemy URL (e.g.
``postgresql+psycopg://…``) through ``MLOPS_KIT_STORE_URL``.

Where things are:

* ``entry.py``: the ``predictions`` table, ``BASE_COLUMNS`` and ``LogEntry`` (what a row is);
* ``writer.py``: ``PredictionLog``, the queue and its writer thread, its retries and backlog;
* ``row_text.py``: the writer's fast path (the same rows as ``LogEntry.rows()``, made quickly);
* ``window.py``: ``read_predictions`` and ``LogWindow``, the log read back by SQL.
"""
