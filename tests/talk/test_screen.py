"""Tables the audience reads are shown whole."""

from __future__ import annotations

import pandas as pd

from mlops_kit.talk import screen


def test_a_long_cell_is_shown_whole_not_cut_mid_word() -> None:
    text = "Quem decide se ele é bom o bastante para produção, e com que dados " * 2
    table = pd.DataFrame({"pergunta": [text], "notebook": ["02"]})
    with pd.option_context("display.max_colwidth", 50):
        assert text.strip() not in repr(table)  # pandas' default cuts it
        screen.readable_tables()
        assert text.strip() in repr(table)
        assert text.strip() in table._repr_html_()
