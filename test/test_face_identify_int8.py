"""The two-stage (int8 then exact float32) gallery search gives the brute-force answer."""
from __future__ import annotations

import numpy as np

from sense_perception.face.gallery import EMBEDDING_DIM, ConsentRecord, DriverRecord
from sense_perception.face.identify import TemplateIndex, _Int8Scores


def _drivers(total: int, per: int, rng: np.random.Generator) -> list[DriverRecord]:
    consent = ConsentRecord.now("test")
    out = []
    for d, start in enumerate(range(0, total, per)):
        k = min(per, total - start)
        t = rng.standard_normal(EMBEDDING_DIM) + 0.6 * rng.standard_normal((k, EMBEDDING_DIM))
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        out.append(DriverRecord(f"drv-{d:08x}", f"d{d}", "", consent, t.astype(np.float32)))
    return out


def _queries(index: TemplateIndex, n: int, rng: np.random.Generator) -> np.ndarray:
    q = rng.standard_normal((n, EMBEDDING_DIM)).astype(np.float32)
    near = index.matrix[rng.integers(0, len(index.matrix), n)]
    q[::2] = near[::2] + 0.05 * q[::2]  # half near an enrolled template, half strangers
    q[1::4] = near[1::4] + 0.9 * q[1::4]  # and some in between
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_error_bound_holds_for_every_template() -> None:
    rng = np.random.default_rng(3)
    matrix = np.concatenate([d.templates for d in _drivers(4000, 20, rng)])
    scores = _Int8Scores(matrix)
    q = rng.standard_normal((40, EMBEDDING_DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    approx, bound = scores(q)
    err = np.abs(q.astype(np.float64) @ matrix.T.astype(np.float64) - approx)
    assert (err <= bound).all()
    assert bound.max() < 0.05  # tight enough to leave few candidates


def test_two_stage_equals_brute_force() -> None:
    rng = np.random.default_rng(4)
    drivers = _drivers(6000, 20, rng) + _drivers(7, 7, rng)  # a last, smaller driver
    fast = TemplateIndex(drivers, coarse_min_templates=1000)
    brute = TemplateIndex(drivers, coarse_min_templates=10**9)
    assert fast._coarse is not None and brute._coarse is None
    queries = _queries(brute, 200, rng)
    got = fast.match(queries)
    want = brute.match(queries)
    # The exact stage scores a few rows with a matrix-vector product, brute force all rows with a
    # matrix product: BLAS may sum the 128 terms in another order (per CPU), so two drivers whose
    # best scores tie to within float32 rounding may come out in either order. Anywhere else the
    # answer must be the same driver.
    differ = np.flatnonzero(got.index != want.index)
    rows = np.arange(len(queries))
    tie_gap = np.abs(want.per_driver[rows, got.index] - want.per_driver[rows, want.index])
    assert (tie_gap[differ] <= 1e-6).all(), f"queries {differ.tolist()} pick another driver"
    assert len(differ) <= 2, f"{len(differ)} float ties out of {len(queries)} queries"
    np.testing.assert_allclose(got.score, want.score, atol=1e-6)
    np.testing.assert_allclose(got.per_driver, want.per_driver, atol=1e-6)  # computed lazily
    single = fast.match(queries[5])  # one face per frame, the node's case
    assert single.index.tolist() == [want.index[5]]


def test_duplicate_templates_of_two_drivers_tie_like_brute_force() -> None:
    rng = np.random.default_rng(5)
    drivers = _drivers(2000, 20, rng)
    drivers[7].templates[3] = drivers[2].templates[4]  # same template enrolled for two drivers
    fast = TemplateIndex(drivers, coarse_min_templates=100)
    brute = TemplateIndex(drivers, coarse_min_templates=10**9)
    q = drivers[2].templates[4][None]
    want = brute.match(q)
    if want.per_driver[0, 2] == want.per_driver[0, 7]:  # an exact tie: the first driver wins
        assert fast.match(q).index.tolist() == want.index.tolist() == [2]
    else:  # BLAS rounded the two identical rows differently on this CPU: either owner is right
        assert abs(want.per_driver[0, 2] - want.per_driver[0, 7]) <= 1e-6
        assert fast.match(q).index[0] in (2, 7) and want.index[0] in (2, 7)
