"""A fleet worker loads every model once and gives each bag fresh per-stream state only."""
from __future__ import annotations

from support import FakeDetector
from sense_perception.fleet.worker import BagWorker, WorkerSettings

CABIN = "/camera/cabin/image_raw/compressed"


def test_face_models_load_once_per_worker(tmp_path, monkeypatch):
    from sense_perception.core.detection import detector_setup
    from sense_perception.face.attention import estimator

    built: list[object] = []
    real = estimator.AttentionEstimator.__init__

    def counting(self, *args, **kwargs):
        built.append(self)
        real(self, *args, **kwargs)

    # The exterior detector is not what this checks: a fake spares loading it.
    monkeypatch.setattr(detector_setup, "build_detector", lambda params, source: FakeDetector())
    monkeypatch.setattr(estimator.AttentionEstimator, "__init__", counting)
    worker = BagWorker(WorkerSettings(out=tmp_path, cabin=CABIN))
    first, second = worker._identifier(), worker._identifier()
    assert len(built) == 1  # the face mesh and iris models, for every bag of this worker
    assert first.attention.estimator is second.attention.estimator is built[0]
    assert first.engine is second.engine
    # ... while what one recording taught (identity evidence, the last mesh) stays with it.
    assert first.attention is not second.attention and first.decider is not second.decider
    assert worker.info()["provider"] == "FakeExecutionProvider"
