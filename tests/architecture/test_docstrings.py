"""Docstring examples run, and every public name says what it is.

Examples marked ``# doctest: +SKIP`` need a model download, a server or a corpus; every other example runs
here, in a fresh temporary ``TAMIS_HOME`` and working directory.
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

from .test_layering import module_files

MODULES = sorted(m for m in module_files() if m != "tamis.cli.__main__")


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.setenv("TAMIS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(mod, module):
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} docstring examples of {module} failed (output above)"


@pytest.mark.parametrize("package", sorted(m for m, p in module_files().items() if p.name == "__init__.py"))
def test_public_names_have_docstrings(package):
    pkg = importlib.import_module(package)
    missing = []
    for name in getattr(pkg, "__all__", []):
        obj = getattr(pkg, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and not (getattr(obj, "__doc__", None) or "").strip():
            missing.append(name)
    assert not missing, f"public names of {package} without a docstring: {missing}"
