"""What the audience reads on screen: tables shown whole, never cut mid-word by pandas."""

from __future__ import annotations

import pandas as pd


def readable_tables() -> None:
    """Show every table cell in full (pandas cuts text at 50 characters by default)."""
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.width", 200)
