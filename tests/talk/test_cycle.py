"""Notebook 00's cycle figure: one box per component of the talk, each naming real places in the kit."""

from __future__ import annotations

import re

from mlops_kit.config import PROJ_ROOT
from mlops_kit.talk.cycle import CYCLE, mlops_cycle

SRC = PROJ_ROOT / "src" / "mlops_kit"
NOTEBOOKS = PROJ_ROOT / "notebooks"


def test_the_figure_shows_every_component_and_where_it_lives() -> None:
    texts = {t.get_text() for t in mlops_cycle().axes[0].texts}
    assert {label for label, _ in CYCLE} | {where for _, where in CYCLE} <= texts


def test_every_box_names_notebooks_and_modules_that_exist() -> None:
    for label, where in CYCLE:
        numbers, modules = where.split(" · ")
        for number in numbers.split("/"):
            assert list(NOTEBOOKS.glob(f"{number}_*.ipynb")), (label, number)
        for name in modules.split(", "):
            stem = name.removesuffix(".py").removesuffix("/")
            assert (SRC / f"{stem}.py").exists() or (SRC / stem).is_dir(), (label, name)
            assert re.fullmatch(r"[a-z_]+(\.py|/)", name), name
