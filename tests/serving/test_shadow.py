"""The challenger in shadow: it scores what the served model answered, off the request path."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from mlops_kit import capture
from mlops_kit.compare import compare, shadowed
from mlops_kit.labels import LABEL, export_for_labelling, import_labels
from mlops_kit.store.db import make_engine
from mlops_kit.store.predictions.entry import shadow_predictions
from mlops_kit.store.predictions.window import read_predictions

RECORDS = [  # the first record has 'sex': the shadow (v2, trained without it) ignores it
    {"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9, "flipper_length_mm": 192.0,
     "body_mass_g": 3500.0, "sex": "female"},
    {"island": "Biscoe", "bill_length_mm": 47.3, "bill_depth_mm": 13.8, "flipper_length_mm": 216.0,
     "body_mass_g": 4725.0},
    {"island": "Torgersen", "bill_length_mm": 39.1, "bill_depth_mm": 18.7,
     "flipper_length_mm": 181.0, "body_mass_g": 3750.0},
]  # fmt: skip


def shadow_rows(settings) -> pd.DataFrame:
    engine = make_engine(settings.store)
    try:
        with engine.connect() as conn:
            return pd.DataFrame(conn.execute(sa.select(shadow_predictions)).mappings().all())
    finally:
        engine.dispose()


def test_the_shadow_scores_every_answered_record_and_never_answers(make_client, settings):
    client = make_client(shadow_alias="challenger")
    answered = [client.post("/predict", json=RECORDS, headers={"X-Request-ID": f"r{i}"})
                for i in range(4)]  # fmt: skip
    assert all(r.status_code == 200 for r in answered)
    assert {p["model_version"] for r in answered for p in r.json()["predictions"]} == {"1"}
    assert client.app.state.shadow.flush(10)
    client.app.state.predlog.flush(10)

    shadow = shadow_rows(settings)
    served = read_predictions(settings)
    assert len(shadow) == len(served) == 12
    assert set(shadow["model_version"]) == {"2"}  # the challenger alias' version
    keys = ["request_id", "record_index"]
    assert sorted(map(tuple, shadow[keys].values)) == sorted(map(tuple, served[keys].values))
    health = client.get("/health").json()["shadow"]
    assert health["alias"] == "challenger" and health["model_version"] == "2"
    assert health["scored"] == 12 and health["skipped"] == 0 and health["dropped"] == 0


def test_compare_sets_the_two_side_by_side_with_accuracy_where_labels_came_back(
    make_client, settings
):
    client = make_client(shadow_alias="challenger")
    for i in range(3):
        response = client.post("/predict", json=RECORDS, headers={"X-Request-ID": f"c{i}"})
        assert response.status_code == 200
    assert client.app.state.shadow.flush(10)
    client.app.state.predlog.flush(10)

    result = compare(settings)
    assert (result.requests, result.predictions, result.labelled) == (3, 9, 0)
    assert 0.0 <= result.agreement <= 1.0
    table = result.table()
    assert table["model"].tolist() == ["served", "shadow"]
    assert table["versions"].tolist() == ["1", "2"]
    assert (table["accuracy"] == "-").all()  # no label came back yet
    assert shadowed(settings, "2") == 9 and shadowed(settings, "1") == 0

    review = capture.capture(settings, threshold=1.01, track=False)  # every case, for review
    sheet = pd.read_csv(export_for_labelling(review))
    served = read_predictions(settings).set_index(["request_id", "record_index"])["predicted"]
    sheet[LABEL] = [served[(c.split("#")[0], int(c.split("#")[1]))] for c in sheet["case_id"]]
    sheet.to_csv(review.folder / "filled.csv", index=False)
    import_labels(settings, review, review.folder / "filled.csv")
    labelled = compare(settings)
    assert labelled.labelled == 9
    assert labelled.sides[0].accuracy == 1.0  # the reviewer agreed with every served answer
    assert labelled.sides[1].accuracy == labelled.agreement


def test_a_shadow_alias_nobody_has_is_skipped_and_serving_goes_on(make_client):
    client = make_client(shadow_alias="nobody")
    assert client.post("/predict", json=RECORDS).status_code == 200
    assert client.app.state.shadow.flush(10)
    shadow = client.get("/health").json()["shadow"]
    assert shadow["model_version"] is None and shadow["skipped"] == 3 and shadow["scored"] == 0


def test_no_shadow_unless_asked(client):
    assert client.get("/health").json()["shadow"] is None
