import pytest

from pipeline.executor import ClipFailure, StageFailed, check_error_budget, map_clips


def square_unless_negative(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative input {x}")
    return x * x


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_failures_are_recorded_and_the_rest_completes(n_jobs):
    items = [(f"c{i}", (x,)) for i, x in enumerate([1, -2, 3, -4, 5])]
    results, failures = map_clips(square_unless_negative, items, n_jobs=n_jobs, stage="features")
    assert results == {"c0": 1, "c2": 9, "c4": 25}
    assert list(results) == ["c0", "c2", "c4"]  # input order
    assert failures == [
        ClipFailure("c1", "features", "ValueError", "negative input -2"),
        ClipFailure("c3", "features", "ValueError", "negative input -4"),
    ]


def test_error_budget_summarises_the_failures():
    failures = [ClipFailure(f"c{i}", "decode", "AudioDecodeError", "bad header") for i in range(3)]
    check_error_budget(3, 100, 0.05, failures, "audio_features")  # 3% is within budget
    with pytest.raises(
        StageFailed, match=r"3 of 10 clips failed \(30.0% > .*decode/AudioDecodeError: 3.*c0: bad header"
    ):
        check_error_budget(3, 10, 0.05, failures, "audio_features")
