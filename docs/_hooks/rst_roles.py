"""A griffe extension for the docs build: the package's docstrings are written for ``help()``
and use a little reStructuredText (``:class:`~aiowriter.X``` roles, ``Usage::`` literal-block
markers). Rendered as Markdown, roles become inline code and ``::`` a colon, so the API
reference reads cleanly without rewriting every docstring."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|exc|mod|data|obj|const):`(~?)([^`]+)`")
_LITERAL = re.compile(r"(\S)::[ \t]*$", re.MULTILINE)
_BARE_LITERAL = re.compile(r"^[ \t]*::[ \t]*$", re.MULTILINE)


def _role(match: re.Match[str]) -> str:
    short, target = match.groups()
    if target.startswith("~"):  # :class:`~x.Y` written without the tilde group
        short, target = "~", target[1:]
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def convert(text: str) -> str:
    text = _ROLE.sub(_role, text)
    text = _LITERAL.sub(r"\1:", text)
    return _BARE_LITERAL.sub("", text)


class RstRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
