"""The LRU store behind the inference caches: what it keeps, what it drops first, what it counts."""

from __future__ import annotations

import threading

import pytest
import torch

from sketch2anime.lru_store import LruStore, tensor_digest


def test_the_least_recently_used_entry_is_dropped_first() -> None:
    store = LruStore(2)
    store.put("a", 1)
    store.put("b", 2)
    assert store.get("a") == 1  # "a" is now the most recently used
    store.put("c", 3)
    assert store.get("b") is None and store.get("a") == 1 and store.get("c") == 3
    assert len(store) == 2
    assert (store.hits, store.misses) == (3, 1)
    store.put("a", 10)  # a new value replaces the old one
    assert store.get("a") == 10


def test_get_many_counts_each_lookup_and_returns_only_the_stored() -> None:
    store = LruStore(4)
    store.put_many([("x", 1), ("y", 2)])
    assert store.get_many(["x", "z", "y", "x"]) == {"x": 1, "y": 2}
    assert (store.hits, store.misses) == (3, 1)


def test_zero_entries_stores_nothing_and_negative_is_refused() -> None:
    store = LruStore(0)
    store.put("a", 1)
    assert store.get("a") is None and len(store) == 0
    with pytest.raises(ValueError, match="entries"):
        LruStore(-1)
    store = LruStore(3)
    store.put_many([(i, i) for i in range(3)])
    store.clear()
    assert len(store) == 0 and store.get(0) is None


def test_concurrent_puts_keep_the_bound() -> None:
    store = LruStore(5)

    def writer(offset: int) -> None:
        for i in range(200):
            store.put((offset, i), i)
            store.get((offset, i - 1))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store) == 5
    assert store.hits + store.misses == 800


def test_the_digest_changes_with_any_value_and_not_with_the_dtype_of_equal_values() -> None:
    a = torch.zeros(2, 3)
    b = a.clone()
    b[1, 2] = 1e-6
    assert tensor_digest(a) != tensor_digest(b)
    assert tensor_digest(a) == tensor_digest(a.double()) == tensor_digest(a.clone())
    assert len(tensor_digest(a)) == 16
