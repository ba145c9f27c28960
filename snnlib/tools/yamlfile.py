"""YAML files read strictly: a key given twice in one mapping is an error, not a silent overwrite.

PyYAML's ``safe_load`` keeps the last of two equal keys, so ``alpha: 0.0`` followed further
down by ``alpha: 0.003`` would run the second without a word; every YAML file that ``snnlib``
reads (run configs, profile grids) goes through :func:`load_yaml` instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YAMLFileError(ValueError):
    """A YAML file that cannot be used: missing, unparsable or with a key given twice."""


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a key given twice in one mapping."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise YAMLFileError(
                f"key {key!r} is given twice in one mapping (lines {seen[key]} and {line}); "
                "keep one of them"
            )
        seen[key] = line
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(path: Path | str) -> Any:
    """The content of the YAML file ``path`` (``None`` when empty).

    Raises :class:`YAMLFileError` naming the file when it is missing, is not valid YAML or
    gives a key twice in one mapping.

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
        text = path.read_text()
    except OSError as err:
        raise YAMLFileError(f"{path}: cannot read it ({err.strerror}); check the path") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no objects built
    except YAMLFileError as err:
        raise YAMLFileError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise YAMLFileError(f"{path}: not valid YAML: {err}") from None
