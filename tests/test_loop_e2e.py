"""The closed loop end to end: real API process, real MLflow, shifted traffic, capture, labels, retraining.

After traffic from a miscalibrated calliper, the retrained champion must be better than the old one
on the shifted evaluation cases (held out of its training), and the running API must serve it
without a restart.
"""

from __future__ import annotations

import pytest

from mlops_kit import capture, retrain, tracking
from mlops_kit.monitoring.monitor import monitor
from mlops_kit.services import start_api
from mlops_kit.simulator import traffic
from mlops_kit.simulator.reviewer import label_with_simulator_truth
from mlops_kit.simulator.shifts import TRUTH
from mlops_kit.store.predictions.window import read_predictions
from mlops_kit.talk import loop

pytestmark = pytest.mark.slow  # real training, notebooks or server processes

FAST = ["logistic_regression"]


def test_the_loop_closes_and_the_api_serves_a_better_champion(settings):
    start = loop.starting_champion(settings, candidates=FAST)
    assert (start.version, start.how) == ("1", "trained now")
    with start_api(settings.model_copy(update={"reload_interval": 0.5})) as api:
        normal = traffic.simulate(settings, api.url, seed=1, phase="normal")
        shifted = traffic.simulate(settings, api.url, shift="calliper", seed=2, phase="shift")

        calm = loop.phase_report(settings, normal)
        report = monitor(settings, since=normal.started_at)
        assert not calm.retrain_due
        assert report.retrain_due and {"bill_length_mm", "bill_depth_mm"} <= set(report.drifted)
        assert shifted.summary()["mean_confidence"] < normal.summary()["mean_confidence"] - 0.05

        review = capture.capture(settings, since=normal.started_at)
        low = shifted.records["low_confidence"].sum() + normal.records["low_confidence"].sum()
        assert len(review) == low > 0
        label_with_simulator_truth(settings, review)

        result = retrain.retrain(settings, candidates=FAST)
        assert result.decision.promoted and result.decision.version == "2"
        before, after = result.champion_scores, result.challenger_scores
        assert result.new_data.added_eval > 0  # shifted production cases held out of training
        assert after["production_accuracy"] > before["production_accuracy"]
        assert after["production_mean_confidence"] > before["production_mean_confidence"]

        assert loop.wait_until_serving(api, "2") == "2"  # hot reload, same process
        again = traffic.simulate(settings, api.url, shift="calliper", seed=2, phase="after")
        assert set(again.records["model_version"]) == {"2"}
        assert again.summary()["mean_confidence"] > shifted.summary()["mean_confidence"]
        assert again.summary()["accuracy"] >= shifted.summary()["accuracy"]
    assert not api.process.running()  # leaving the block stopped it

    # the truth stayed aside: the log holds what the API received, which is inputs only
    log = read_predictions(settings)
    assert len(log) == 300 and not {TRUTH, "species"} & set(log.columns)
    table = loop.before_after(settings, normal, shifted, again, result)
    assert table.loc["model version served"].tolist() == ["v1", "v1", "v2"]
    runs = tracking.client(settings).search_runs(
        [tracking.client(settings).get_experiment_by_name(settings.experiment_name).experiment_id]
    )
    assert {"capture", "labelling", "retraining"} <= {r.data.tags.get("pipeline") for r in runs}
