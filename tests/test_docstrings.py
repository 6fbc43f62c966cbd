"""The public API is documented: every public function and class has a docstring with an
``Examples`` section, and every runnable example in the package gives the output it shows.

Issue 4, "Done when": every public function has a docstring with a short example.  The public
API is the names in each module's ``__all__`` that are functions or classes defined in that
module, plus the public methods defined on those classes (properties need a docstring but no
example, so they are not checked here).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import matplotlib
import pytest

import crmresearch

matplotlib.use("Agg")  # the plotting examples draw figures

# Methods that are not the package's API: notebook display hooks and pydantic's hooks.
SKIP_METHODS = {"_repr_html_"}
EXAMPLES = re.compile(r"^Examples\n-{3,}$", re.MULTILINE)


def _modules() -> list[ModuleType]:
    found = pkgutil.walk_packages(crmresearch.__path__, crmresearch.__name__ + ".")
    return [importlib.import_module(m.name) for m in found]


MODULES = _modules()


def _short(module: ModuleType) -> str:
    return module.__name__.removeprefix(crmresearch.__name__ + ".")


def _methods(cls: type) -> list[tuple[str, object]]:
    """Public methods defined on ``cls`` itself (not inherited, not properties, not pydantic's)."""
    out = []
    for name, attr in vars(cls).items():
        if name.startswith("_") or name in SKIP_METHODS or name.startswith("model_"):
            continue
        func = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
        if not inspect.isfunction(func):
            continue  # properties, class attributes, nested classes
        if not func.__qualname__.startswith(cls.__qualname__ + "."):
            continue  # set on the class by a library (e.g. pydantic's model_post_init)
        out.append((name, func))
    return out


def public_api() -> dict[str, object]:
    """``module.name`` / ``module.Class.method`` -> object, over every module's ``__all__``."""
    api: dict[str, object] = {}
    for module in MODULES:
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if (
                not (inspect.isfunction(obj) or inspect.isclass(obj))
                or obj.__module__ != module.__name__
            ):
                continue  # constants and re-exports are documented where they are defined
            api[f"{_short(module)}.{name}"] = obj
            if inspect.isclass(obj):
                for meth, func in _methods(obj):
                    api[f"{_short(module)}.{name}.{meth}"] = func
    return api


def _has_examples(obj: object) -> bool:
    doc = obj.__doc__  # not inspect.getdoc: it falls back to a base class's docstring
    return bool(doc) and EXAMPLES.search(inspect.cleandoc(doc)) is not None


def test_public_api_found() -> None:
    api = public_api()
    assert "core.params.load_params" in api and "data.source.Source.sql" in api
    assert not any(k.endswith(".model_post_init") for k in api)


def test_every_public_function_has_an_example() -> None:
    missing = sorted(k for k, obj in public_api().items() if not _has_examples(obj))
    offenders = list(missing)
    assert not offenders, (
        f"{len(offenders)} public functions/classes/methods have no docstring with an "
        "'Examples' section:\n  " + "\n  ".join(offenders)
    )


@pytest.mark.parametrize("module", MODULES, ids=_short)
def test_doctests(module: ModuleType) -> None:
    """Every runnable example gives the output it shows (``# doctest: +SKIP`` lines are not run)."""
    import matplotlib.pyplot as plt

    # examples may switch fonts or draw figures: leave matplotlib as the other tests expect it
    with plt.rc_context():
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        result = doctest.testmod(module, optionflags=flags)
        plt.close("all")
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples of {module.__name__} failed"
    )
