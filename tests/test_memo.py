"""``quantdoctor._memo`` behaves as the ``functools`` decorators it stands in for."""

from __future__ import annotations

import functools

import pytest

from quantdoctor import _memo


@pytest.mark.parametrize("lru", [functools.lru_cache, _memo.lru_cache])
def test_lru_cache_keeps_results_as_functools_does(lru: object) -> None:
    calls: list[tuple[object, ...]] = []

    @lru(maxsize=2)  # type: ignore[operator]
    def add(a: int, b: int = 0) -> int:
        """Adds."""
        calls.append((a, b))
        return a + b

    assert (add(1), add(1), add(1, 2), add(1, b=2), add(1, b=2)) == (1, 1, 3, 3, 3)
    # positional and keyword calls are kept apart, as functools keys them
    assert calls == [(1, 0), (1, 2), (1, 2)]
    assert add.__name__ == "add" and add.__doc__ == "Adds." and add.__wrapped__ is not None
    add(5)  # a third distinct call: the cache (two) forgets one
    add.cache_clear()
    add(1)
    assert calls[-1] == (1, 0)


@pytest.mark.parametrize("lru", [functools.lru_cache, _memo.lru_cache])
def test_a_call_that_raises_keeps_nothing(lru: object) -> None:
    calls = []

    @lru(maxsize=4)  # type: ignore[operator]
    def fail(x: int) -> int:
        calls.append(x)
        raise ValueError(x)

    for _ in range(2):
        with pytest.raises(ValueError):
            fail(1)
    assert calls == [1, 1]
    with pytest.raises(TypeError):
        fail([1])  # unhashable, as functools refuses it


@pytest.fixture(params=["functools' C cache", "functools' lru_cache (no C cache)"])
def memo(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> object:
    if request.param == "functools' lru_cache (no C cache)":
        monkeypatch.setattr(_memo, "_lru_cache_wrapper", None)
    return _memo


def test_both_forms_keep_results(memo: object) -> None:
    test_lru_cache_keeps_results_as_functools_does(_memo.lru_cache)
    test_a_call_that_raises_keeps_nothing(_memo.lru_cache)
    test_lru_cache_is_bounded()


def test_the_c_cache_reports_as_functools_does() -> None:
    @_memo.lru_cache(maxsize=4)
    def one(x: int) -> int:
        return x

    one(1), one(1), one(2)
    assert repr(one.cache_info()) == "CacheInfo(hits=1, misses=2, maxsize=4, currsize=2)"  # type: ignore[attr-defined]


def test_lru_cache_is_bounded() -> None:
    seen: list[int] = []

    @_memo.lru_cache(maxsize=3)
    def square(x: int) -> int:
        seen.append(x)
        return x * x

    for x in range(10):
        square(x)
    square(9)
    square(0)  # forgotten: computed again
    assert seen == [*range(10), 0]
    with pytest.raises(TypeError, match="maxsize"):
        _memo.lru_cache(maxsize=0)


@pytest.mark.parametrize("cached", [functools.cached_property, _memo.cached_property])
def test_cached_property_computes_once_per_instance(cached: type) -> None:
    class Box:
        def __init__(self, n: int) -> None:
            self.n = n
            self.computed = 0

        def double(self) -> int:
            """Twice n."""
            self.computed += 1
            return 2 * self.n

        twice = cached(double)

    a, b = Box(2), Box(5)
    assert (a.twice, a.twice, b.twice) == (4, 4, 10)
    assert (a.computed, b.computed) == (1, 1)
    assert Box.twice.__doc__ == "Twice n." and isinstance(Box.__dict__["twice"], cached)
    a.twice = 7  # an instance attribute, as functools allows
    assert a.twice == 7
    del a.twice
    assert a.twice == 4 and a.computed == 2
