"""YAML files read strictly: what a user writes means what it looks like, or is an error.

Every YAML file that ``snnlib`` reads (run configs, profile grids) and every ``key=value``
override goes through :func:`load_yaml` / :func:`parse_yaml`, which differ from PyYAML's
``safe_load`` in four ways:

* a key given twice in one mapping is an error (``safe_load`` keeps the last, so
  ``alpha: 0.0`` further down followed by ``alpha: 0.003`` would run the second silently);
  merge keys (``<<: *defaults``) work as in YAML, the keys written beside them win;
* aliases may expand to at most :data:`MAX_VALUES` values in all (a few hundred bytes of
  nested aliases otherwise expand to billions, and any message that shows the value with it);
* an integer with a leading zero (``T: 010``) is an error: YAML 1.1 reads it as octal (8);
* a file that is not UTF-8 is an error naming its line.

Errors are :class:`YAMLFileError`, naming the file (or the override) and, where there is
one, the key; values in messages are shown short (:func:`snnlib.checks.shown`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from snnlib.checks import shown

MAX_VALUES = 100_000  # values an aliased document may expand to (a profile has a few hundred)
INT_TAG = "tag:yaml.org,2002:int"
MERGE_TAG = "tag:yaml.org,2002:merge"
_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")


class YAMLFileError(ValueError):
    """A YAML file that cannot be used: missing, unparsable or with a key given twice."""


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` with the rules of the module docstring."""


def _leading_zero(node: yaml.Node, key: Any = None) -> None:
    """Refuse ``node`` if it is an integer written with a leading zero (``key``: its key)."""
    if not (isinstance(node, yaml.ScalarNode) and node.tag == INT_TAG):
        return
    if _LEADING_ZERO.fullmatch(node.value):
        where = f"line {node.start_mark.line + 1}: " + (f"{key}: " if key is not None else "")
        plain = node.value.replace("_", "")  # YAML resolves only octal digits to int here
        raise YAMLFileError(
            f"{where}{node.value} is an integer with a leading zero, which YAML reads as octal "
            f"({int(plain, 8)}); write {int(plain)}"
        )


def _int(loader: _StrictLoader, node: yaml.ScalarNode) -> int:
    _leading_zero(node)
    return loader.construct_yaml_int(node)


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == MERGE_TAG:  # "<<": merged by flatten_mapping below
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise YAMLFileError(
                f"key {shown(key)} is given twice in one mapping (lines {seen[key]} and {line}); "
                "keep one of them"
            )
        seen[key] = line
        items = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for item in items:
            _leading_zero(item, key)
    loader.flatten_mapping(node)  # explicit keys win over merged ones, as YAML says
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_StrictLoader.add_constructor(INT_TAG, _int)


def _expanded_size(root: yaml.Node) -> int:
    """How many values ``root`` holds once every alias is expanded (capped a little above
    :data:`MAX_VALUES`). An alias is the same node object, so sizes are memoised by node."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_:  # an alias inside its own anchor: expands without end
            return MAX_VALUES + 1
        open_.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total = min(total + size(child), MAX_VALUES + 1)
        open_.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root)


def parse_yaml(text: str, source: str) -> Any:
    """The content of YAML ``text`` (``None`` when empty) read with the rules of the module
    docstring; errors are :class:`YAMLFileError` starting with ``source`` (a file, an override).
    """
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_VALUES:
            raise YAMLFileError(
                f"its aliases (*name) expand to more than {MAX_VALUES:,} values; write the "
                "values out, or use fewer nested aliases"
            )
        return loader.construct_document(node)  # a SafeLoader subclass: no objects built
    except YAMLFileError as err:
        raise YAMLFileError(f"{source}: {err}") from None
    except yaml.YAMLError as err:
        raise YAMLFileError(f"{source}: not valid YAML: {err}") from None
    except RecursionError:
        raise YAMLFileError(f"{source}: nested too deeply to read; flatten it") from None
    finally:
        loader.dispose()


def load_yaml(path: Path | str) -> Any:
    """The content of the YAML file ``path`` (``None`` when empty), see :func:`parse_yaml`.

    Raises :class:`YAMLFileError` naming the file when it is missing, not UTF-8, not valid
    YAML, or breaks a rule of the module docstring.

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    ...     _ = f.write("T: 8\\nalpha: 0.0\\nalpha: 0.003\\n")
    >>> load_yaml(f.name)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    snnlib.tools.yamlfile.YAMLFileError: ...: key 'alpha' is given twice in one mapping...
    >>> os.unlink(f.name)
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise YAMLFileError(f"{path}: cannot read it ({err.strerror}); check the path") from None
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as err:
        line = blob[: err.start].count(b"\n") + 1
        raise YAMLFileError(
            f"{path}: line {line} is not UTF-8 (byte {blob[err.start]:#04x}); save the file "
            "as UTF-8"
        ) from None
    return parse_yaml(text, str(path))
