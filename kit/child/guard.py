"""The guard over the modules grading relies on, inside the grading child (see
`kit.grading.integrity` for the whole picture): what the learner's code replaced is reported
after each check and put back."""
from __future__ import annotations

import sys
from itertools import chain
from operator import call, is_, itemgetter
from types import BuiltinFunctionType, FunctionType, ModuleType

#: Packages whose own functions and classes must not change while checks run: the kit's, the
#: test runner's, and the standard-library machinery the checks and the result path run on
#: (the asyncio runner and event loop, JSON and HMAC that sign the results, threads, signals).
WATCHED_PACKAGES = ("kit", "checks", "pytest", "_pytest", "pluggy", "pytest_asyncio",
                    "opentelemetry.sdk.trace.export.in_memory_span_exporter",
                    "asyncio", "json", "hmac", "hashlib", "threading", "concurrent.futures", "contextlib",
                    "contextvars", "functools", "signal", "selectors", "traceback", "inspect", "copy",
                    "weakref", "types", "enum", "dataclasses", "operator")
#: Modules whose built-in functions (written in C) are watched too, by identity: replacing
#: `os.write`, `time.monotonic` or `builtins.isinstance` is as much tampering as replacing a
#: Python function.
WATCHED_BUILTINS = ("builtins", "os", "time", "signal", "_asyncio", "_json", "_thread", "gc", "sys", "select")
#: Module globals that change legitimately during a run.
ALLOWED_TO_CHANGE = {("kit.harness.learner", "_hung_import")}

_MISSING = object()


def _watched(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in WATCHED_PACKAGES) and name not in WATCHED_BUILTINS


def _ours(name: str) -> bool:
    return name in ("kit", "checks") or name.startswith(("kit.", "checks."))


class ModuleGuard:
    """Remembers what the watched modules hold; says what was replaced; puts it back."""

    def __init__(self) -> None:
        # (owner, its dotted name, {attribute: original}, {attribute: copy of a mutable original})
        self._owners: list[tuple[object, str, dict[str, object], dict[str, object]]] = []
        # The same, flattened for `changes`: one getter and one live mapping per owner (each
        # getter returns the values of that owner's kept names, in order, the first one again
        # at the end), every original value in that order, and (name, kept, copies) of the
        # owners that have copies.
        self._getters: list = []
        self._mappings: list = []
        self._originals: list = []
        self._copied: list = []

    def take(self) -> "ModuleGuard":
        owners = []
        for name, module in sorted(sys.modules.items()):
            if not isinstance(module, ModuleType) or not _watched(name):
                continue
            ours = _ours(name)
            kept, copies = {}, {}
            for attr, value in list(vars(module).items()):
                if attr.startswith("__") or (name, attr) in ALLOWED_TO_CHANGE:
                    continue
                if not ours and not _defined_in(value, name):
                    continue  # pytest's own state and re-exports: only its code is watched
                kept[attr] = value
                # The contents of a constant (UPPER_CASE, by convention) are compared too; any
                # other module-level container may be a cache that changes legitimately.
                copied = _copy_of(value) if ours and attr.isupper() else _MISSING
                if copied is not _MISSING:
                    copies[attr] = copied
                if isinstance(value, type) and _defined_in(value, name):
                    members = {k: v for k, v in vars(value).items()
                               if not k.startswith("__") or k in ("__init__", "__call__", "__eq__")}
                    owners.append((value, f"{name}.{attr}", members, {}))
            owners.append((module, name, kept, copies))
        for name in WATCHED_BUILTINS:
            module = sys.modules.get(name)
            if isinstance(module, ModuleType):
                kept = {attr: value for attr, value in vars(module).items()
                        if not attr.startswith("__") and (isinstance(value, BuiltinFunctionType)
                                                          or _defined_in(value, name))}
                owners.append((module, name, kept, {}))
        self._owners = owners
        for owner, owner_name, kept, copies in owners:
            if kept:
                names = list(kept)
                self._getters.append(itemgetter(*names, names[0]))  # a tuple even for one name
                self._mappings.append(vars(owner))  # live: a module's dict, a class's proxy
                self._originals += [*kept.values(), kept[names[0]]]
            if copies:
                self._copied.append((owner_name, kept, copies))
        return self

    def changes(self, _all=all, _map=map, _is=is_, _call=call, _chain=chain.from_iterable) -> list[str]:
        """The dotted names that no longer hold what they held at `take()`. This runs after every
        check, over some seven thousand names, so the usual case (nothing replaced) is one pass
        in C, by identity (an object claiming to equal the original is still a replacement); the
        names are looked for only when something changed. (The functions it calls are bound when
        it is defined: replacing `builtins.all` or this module's `is_` later changes nothing.)"""
        try:
            same = _all(_map(_is, _chain(_map(_call, self._getters, self._mappings)), self._originals))
        except KeyError:  # a name was removed
            same = False
        found = [] if same else self._replaced()
        for owner_name, kept, copies in self._copied:
            for attr, copied in copies.items():
                if not _same(kept[attr], copied):
                    found.append(f"{owner_name}.{attr}")
        return found

    def _replaced(self) -> list[str]:
        found = []
        for owner, owner_name, kept, _ in self._owners:
            now = vars(owner)
            found += [f"{owner_name}.{attr}" for attr, value in kept.items() if now.get(attr, _MISSING) is not value]
        return found

    def restore(self) -> None:
        for owner, _, kept, copies in self._owners:
            now = vars(owner)
            for attr, value in kept.items():
                if now.get(attr, _MISSING) is not value:
                    try:
                        setattr(owner, attr, value)
                    except (AttributeError, TypeError):
                        pass
            for attr, copied in copies.items():
                value = kept[attr]
                if not _same(value, copied):  # mutated in place (a list emptied): put it back
                    value.clear()
                    if isinstance(value, list):
                        value.extend(copied)
                    else:
                        value.update(copied)


def _defined_in(value: object, module_name: str) -> bool:
    if isinstance(value, (FunctionType, type)):
        return getattr(value, "__module__", None) == module_name
    return False


def _copy_of(value: object) -> object:
    if isinstance(value, (list, dict, set)):
        try:
            return type(value)(value)
        except TypeError:
            return _MISSING
    return _MISSING


def _same(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - a value that cannot be compared is taken as unchanged
        return True
