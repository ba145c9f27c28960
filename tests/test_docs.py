"""docs/method.md points at code that exists: every path it names, and every name its ``Code:``
and ``Tests:`` paragraphs list after a file (``path`` (``name``, ...)) is defined in that file."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHOD = REPO / "docs" / "method.md"

# a backticked span, or a parenthesis outside one
TOKEN = re.compile(r"`([^`]+)`|([()])")
# paths of this repository (``docs/...`` in method.md may name the official code's files)
PATH = re.compile(r"(?:snnlib|tests|configs)/[\w./-]*")
DOTTED = re.compile(r"snnlib(?:\.\w+)+")
NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?")


def code_paragraphs(text: str) -> list[str]:
    """Each ``Code:`` up to the next blank line (its ``Tests:`` included)."""
    return re.findall(r"\bCode:.*?(?=\n[ \t]*\n|\Z)", text, re.S)


def cited_names(paragraph: str) -> tuple[list[str], list[tuple[str, str]]]:
    """``(paths, [(path, name)])``: every backticked path, and each backticked name inside the
    parentheses that follow a path. Prose inside the parentheses is skipped."""
    paths: list[str] = []
    names: list[tuple[str, str]] = []
    current, depth = None, 0
    for span, paren in TOKEN.findall(paragraph):
        if paren:
            depth = depth + 1 if paren == "(" else max(depth - 1, 0)  # a stray ")" as in "1)"
        elif depth == 0:
            current = span if PATH.fullmatch(span) else None
            if current:
                paths.append(current)
        elif current and NAME.fullmatch(span):
            names.append((current, span))
    return paths, names


def is_defined(source: str, name: str) -> bool:
    """``def name``, ``class name`` or ``name =`` (annotated or not) at any indentation;
    ``Class.member`` needs both."""
    return all(
        re.search(
            rf"^\s*(?:(?:async\s+)?def|class)\s+{part}\b|^\s*{part}\s*(?::[^=\n]*)?=(?!=)",
            source,
            re.M,
        )
        for part in name.split(".")
    )


def missing_in(text: str) -> list[str]:
    missing = []
    for paragraph in code_paragraphs(text):
        paths, names = cited_names(paragraph)
        missing += [f"{p}: no such file" for p in paths if not (REPO / p).exists()]
        for path, name in names:
            file = REPO / path
            if file.is_file() and not is_defined(file.read_text(), name):
                missing.append(f"{path}: `{name}` is not defined there")
    return missing


def module_file(dotted: str) -> Path | None:
    """The source file of module ``dotted`` (``snnlib.a`` -> ``snnlib/a.py`` or its package)."""
    base = REPO.joinpath(*dotted.split("."))
    for file in (base.with_suffix(".py"), base / "__init__.py"):
        if file.is_file():
            return file
    return None


def importable(dotted: str) -> bool:
    """``snnlib.a.b`` is a module, or ``b`` is defined in or imported into module ``snnlib.a``
    (read from the source, so that the check needs no import of torch)."""
    if module_file(dotted):
        return True
    module, _, attr = dotted.rpartition(".")
    file = module_file(module)
    if file is None:
        return False
    source = file.read_text()
    imported = rf"^from\s+\S+\s+import\s+(?:\([^)]*\b{attr}\b[^)]*\)|[^\n]*\b{attr}\b)"
    return is_defined(source, attr) or re.search(imported, source, re.M) is not None


def test_parser_reads_the_docs_format():
    paragraph = (
        "Code: `snnlib/a.py` (`f`, `C.m`, the readable one), `snnlib/b/` and `snnlib/c.py`\n"
        "(`g`, hand values, $x (y)$). Tests: `tests/t.py` (`test_h`), `tests/u.py`; 1) and\n"
        "`tests/v.py` (`test_i`)."
    )
    paths, names = cited_names(paragraph)
    assert paths == [
        "snnlib/a.py",
        "snnlib/b/",
        "snnlib/c.py",
        "tests/t.py",
        "tests/u.py",
        "tests/v.py",
    ]
    assert names == [
        ("snnlib/a.py", "f"),
        ("snnlib/a.py", "C.m"),
        ("snnlib/c.py", "g"),
        ("tests/t.py", "test_h"),
        ("tests/v.py", "test_i"),
    ]
    source = "class C:\n    X: int = 1\n\n    def m(self):\n        pass\nY = 2\nZ == 3\n"
    assert all(is_defined(source, n) for n in ("C", "C.m", "X", "Y"))
    assert not any(is_defined(source, n) for n in ("m2", "C.n", "Z"))


def missing_anywhere(text: str) -> list[str]:
    """Every repository path and ``snnlib.x.y`` name in ``text`` that does not exist, and each
    "``NAME`` in ``path``" of the prose whose file does not define ``NAME``."""
    spans = re.findall(r"`([^`\n]+)`", text)
    missing = [f"{s}: no such file" for s in spans if PATH.fullmatch(s) and not (REPO / s).exists()]
    missing += [
        f"{s}: no such module or name" for s in spans if DOTTED.fullmatch(s) and not importable(s)
    ]
    for name, path in re.findall(r"`(\w+)` in `((?:snnlib|tests)/[\w/.-]+\.py)`", text):
        file = REPO / path
        if file.is_file() and not is_defined(file.read_text(), name):
            missing.append(f"{path}: `{name}` is not defined there")
    return missing


def test_the_checks_report_stale_names_and_paths():
    text = (
        "Code: `snnlib/metrics.py` (`no_such_function`), `snnlib/no_such.py` (`x`).\n\n"
        "Held in `CLAIMS` in `snnlib/metrics.py`; see `snnlib.neurons.NoSuch`, `snnlib.no_such`."
    )
    assert missing_in(text) == [
        "snnlib/no_such.py: no such file",
        "snnlib/metrics.py: `no_such_function` is not defined there",
    ]
    assert missing_anywhere(text) == [
        "snnlib/no_such.py: no such file",
        "snnlib.neurons.NoSuch: no such module or name",
        "snnlib.no_such: no such module or name",
        "snnlib/metrics.py: `CLAIMS` is not defined there",
    ]
    assert missing_anywhere("`snnlib.neurons.Collector`, `snnlib.neurons`") == []


def test_code_and_tests_names_in_method_md_exist():
    text = METHOD.read_text()
    paragraphs = code_paragraphs(text)
    assert len(paragraphs) == text.count("Code:") >= 10, "Code: paragraphs not found"
    assert sum(p.count("Tests:") for p in paragraphs) == text.count("Tests:")
    missing = missing_in(text)
    assert not missing, "docs/method.md cites what does not exist:\n" + "\n".join(missing)


def test_every_path_and_name_in_method_md_exists():
    missing = missing_anywhere(METHOD.read_text())
    assert not missing, "docs/method.md names what does not exist:\n" + "\n".join(missing)
