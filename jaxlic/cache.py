"""A bounded cache of compiled functions, least recently used first out.

Compiled XLA executables hold memory (code, constants, buffers' plans) for as long as they are referenced. A
process that meets many image sizes (a codec), or many training configurations (a sweep in a notebook), would keep
every one of them in an unbounded dict; this keeps the ``maxsize`` most recently used."""
from __future__ import annotations

import collections
import threading
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")


class CompileCache:
    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value cached under ``key``, or ``build()``'s, cached (evicting the least recently used)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        value = build()  # outside the lock: building may trace and compile for seconds
        with self._lock:
            self.misses += 1
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
