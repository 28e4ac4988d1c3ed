"""Monitoring: what production looks like next to the data the serving model learnt from.

The talk's monitoring reads the prediction log for four things: the models' confidence, the share
of low-confidence answers, the mix of predicted classes, and drift of the inputs. Retraining is due
when the low-confidence share or drift passes its threshold. One concern per module:

- ``drift``: the statistics (PSI, Kolmogorov–Smirnov, chi-square) and the per-feature drift table;
- ``reference``: the training data of the model version that answered (the baseline);
- ``segments``: how the log is read, the recent window and the history in bounded segments;
- ``report``: ``MonitorReport`` and its views, the segments table and the class mix;
- ``monitor``: ``monitor(...)``, the three steps (read, compare, report) put together;
- ``mlflow_log``: ``log_report``, the report as a `monitoring` run in MLflow;
- ``plots``: the monitoring figures.
"""
