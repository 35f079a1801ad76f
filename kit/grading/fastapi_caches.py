"""Two caches the warm parent puts into FastAPI, so that building the same five apps again and
again (every mesh of every check builds them, about forty times per grading) costs what the
apps themselves do, not what FastAPI re-derives for them each time.

- **Endpoint context by code location.** FastAPI reads the source of every endpoint function
  when a route is built (for its error messages), cached by the function object's id; each app
  is built from new closures, so it tokenises the same source again every time. Cached by code
  location instead: the same file, line and name give the same answer.
- **Validators by what they validate.** For every parameter and response model of a route,
  FastAPI builds a pydantic `TypeAdapter` from the annotation and the field's settings (about a
  third of building an app). Two fields with the same annotation (a class is the same class,
  `dict[str, Any]` equals `dict[str, Any]`), the same metadata and the same settings get the same
  validator, so it is built once and shared (a `TypeAdapter` is never changed after it is built).
  A field whose annotation cannot be hashed, or still holds a name to resolve (a forward
  reference, or a model not yet complete: what it means depends on where it is built), is built
  as before, every time.

Both are answers FastAPI would compute anyway: nothing the learner's apps do changes. When
FastAPI no longer has the private functions patched here, `install` leaves it as it is (grading
is then only slower).
"""
from __future__ import annotations

import warnings
from typing import Annotated, Any, ForwardRef, get_args

def install() -> None:
    """Put both caches into FastAPI (see the module doc); idempotent."""
    _cache_endpoint_context()
    _cache_type_adapters()


def _cache_endpoint_context() -> None:
    try:
        import fastapi.routing as routing
    except ImportError:
        return
    original = getattr(routing, "_extract_endpoint_context", None)
    if original is None or getattr(original, "_workshop_cached", False):
        return
    cache: dict = {}

    def by_code_location(func):
        code = getattr(func, "__code__", None)
        if code is None:
            return original(func)
        key = (code.co_filename, code.co_firstlineno, getattr(func, "__name__", ""))
        if key not in cache:
            cache[key] = original(func)
        return cache[key]

    by_code_location._workshop_cached = True
    routing._extract_endpoint_context = by_code_location


def _cache_type_adapters() -> None:
    try:
        from fastapi._compat import v2
        from pydantic import Field, TypeAdapter
    except ImportError:
        return
    model_field, as_dict = getattr(v2, "ModelField", None), getattr(v2, "asdict", None)
    if model_field is None or as_dict is None or getattr(model_field.__post_init__, "_workshop_cached", False):
        return
    try:
        from pydantic.warnings import UnsupportedFieldAttributeWarning
    except ImportError:  # older pydantic: no such warning to silence
        UnsupportedFieldAttributeWarning = None  # noqa: N806
    cache: dict = {}

    def post_init(self) -> None:
        # What FastAPI's own ModelField.__post_init__ builds, looked up first.
        field = as_dict(self.field_info)
        annotation, metadata, attributes = field["annotation"], field["metadata"], field["attributes"]
        try:
            key = (annotation, repr(metadata), repr(sorted(attributes.items())), repr(self.config))
            hash(key)
        except Exception:  # noqa: BLE001 - unhashable annotation: built as before
            key = None
        if key is not None and not _self_contained(annotation):
            key = None
        found = cache.get(key) if key is not None else None
        if found is not None:
            self._type_adapter = found[1]
            return
        with warnings.catch_warnings():
            if UnsupportedFieldAttributeWarning is not None:
                warnings.simplefilter("ignore", category=UnsupportedFieldAttributeWarning)
            args: Any = (annotation, *metadata, Field(**attributes))
            self._type_adapter = TypeAdapter(Annotated[args], config=self.config)
        if key is not None:
            cache[key] = (annotation, self._type_adapter)  # the annotation kept alive with its key

    post_init._workshop_cached = True
    model_field.__post_init__ = post_init


def _self_contained(annotation: Any, depth: int = 0) -> bool:
    """Whether `annotation` means the same wherever it is built: no forward reference or string
    inside it, and no pydantic model that still waits for one."""
    if depth > 20 or isinstance(annotation, (str, ForwardRef)):
        return False
    if isinstance(annotation, type) and getattr(annotation, "__pydantic_complete__", True) is False:
        return False
    return all(_self_contained(arg, depth + 1) for arg in get_args(annotation))
