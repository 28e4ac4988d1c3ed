"""mlops-kit: the runnable teaching kit for the talk 'MLOps' (TDC Innovation 2022)."""

__version__ = "0.1.0"
