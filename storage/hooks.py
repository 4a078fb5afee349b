"""Questions storage asks of the apps above it, which answer by registering here: storage imports none
of them.

`delete_blockers`: callables `fn(*, storage) -> iterable of names` of what is kept on a storage (images
register the names of the images stored there); a storage with any is not deleted.
"""

from collections.abc import Callable, Iterable

_delete_blockers: list[Callable[..., Iterable[str]]] = []


def register_delete_blockers(fn: Callable[..., Iterable[str]]) -> Callable[..., Iterable[str]]:
    if fn not in _delete_blockers:
        _delete_blockers.append(fn)
    return fn


def delete_blockers(*, storage) -> list[str]:
    names: set[str] = set()
    for fn in list(_delete_blockers):
        names.update(fn(storage=storage))
    return sorted(names)
