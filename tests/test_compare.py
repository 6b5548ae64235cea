"""The one comparator (runtime/compare.py): agreement pooled over pixels, errors in float64.
check_outputs is tested in test_tensorrt_doubles.py, the plan check built on it in test_plan_build.py."""
import numpy as np

from runtime import compare


def test_agreement_is_pooled_over_pixels_not_averaged_over_images():
    small_a, small_b = np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8)   # 0 of 4 agree
    big = np.zeros((4, 4), np.uint8)                                          # 16 of 16 agree
    pooled = compare.Agreement().extend([small_a, big], [small_b, big])
    assert (pooled.same, pooled.total) == (16, 20) and pooled.value == 0.8
    assert compare.mean_agreement([small_a, big], [small_b, big]) == 0.5
    assert compare.Agreement().value is None
    assert compare.agreement(np.zeros(0), np.zeros(0)) == 1.0


def test_class_decisions_argmax_only_nchw_scores():
    logits = np.zeros((1, 3, 2, 2), np.float32)
    logits[0, 2, 0, 0] = 1.0
    assert compare.class_decisions(logits).tolist() == [[[2, 0], [0, 0]]]
    score = np.random.RandomState(0).rand(1, 1, 2, 2).astype(np.float32)  # one channel: a score
    assert compare.class_decisions(score) is score
    class_map = np.ones((1, 2, 2), np.uint8)
    assert compare.class_decisions(class_map) is class_map


def test_errors():
    a = np.array([1.0, -4.0], np.float32)
    b = np.array([1.5, -4.0], np.float32)
    assert compare.max_abs_error(a, b) == 0.5
    assert compare.max_rel_error(a, b) == 0.125      # relative to the reference's range (4)
    assert compare.max_abs_error(np.zeros(0), np.zeros(0)) == 0.0
    assert compare.count_non_finite(np.array([np.nan, np.inf, 1.0])) == 2
