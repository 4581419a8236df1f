"""Name -> class registries, so that configs can name models, front-ends, datasets and tasks.

A config names a component and its keyword arguments::

    model: {name: sepformer, num_sources: 2, d_model: 64}

and :meth:`Registry.build` turns that into an object, rejecting unknown names and unknown
arguments with a :class:`~audionets.errors.ConfigError` that says which key is wrong.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, TypeVar

from audionets.errors import ConfigError

T = TypeVar("T")


class Registry:
    """A mapping from names to constructors of one kind of component (``"model"``, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@MODELS.register("sepformer")`` above a class or factory."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj  # type: ignore[assignment]
            return obj

        return decorator

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def build(self, name: str, /, _where: str | None = None, **kwargs: Any) -> Any:
        """Build the component ``name`` with ``kwargs``, checking the argument names first.

        ``_where`` is the config key the arguments came from (e.g. ``"model"``), used in
        error messages.
        """
        where = _where or self.kind
        ctor = self.get(name)
        check_kwargs(ctor, kwargs, where=where)
        return ctor(**kwargs)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        """The registered names, sorted (so a registry lists its choices)."""
        return iter(self.names())


def check_kwargs(ctor: Callable[..., Any], kwargs: dict[str, Any], where: str) -> None:
    """Raise ConfigError naming ``where.key`` for each argument ``ctor`` does not accept.

    The accepted keys are ``ctor``'s keyword parameters, or ``ctor.config_keys`` when it
    takes ``**settings`` and lists them there (a model built from a config dataclass).
    """
    params = inspect.signature(ctor).parameters
    accepted = [name for name, p in params.items() if name != "self" and p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        if not hasattr(ctor, "config_keys"):
            return
        accepted = list(ctor.config_keys)
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise ConfigError(
            f"unknown key {where}.{unknown[0]}; {where} accepts: {', '.join(accepted)}"
        )


MODELS = Registry("model")
FRONTENDS = Registry("frontend")
DATASETS = Registry("dataset")
#: filled by importing :mod:`audionets.tasks`
TASKS = Registry("task")
