"""Griffe extension for the documentation site: the reST markup of our docstrings as Markdown.

The docstrings are written for ``help()`` and for doctest, with a little reStructuredText:
``:func:`name```-style roles, ``:math:`...``` and ``.. math::`` blocks, ``>>>`` examples and
````name```` definition lists. mkdocstrings renders Markdown, so this extension rewrites,
before the docstrings are parsed:

* roles to code spans, linked (``[`name`][path]``, resolved by mkdocs-autorefs) when the name
  is one of the objects the API reference renders, plain code otherwise;
* ``:math:`x``` to ``$x$`` and ``.. math::`` blocks to ``$$`` blocks, which the build renders
  to MathML (docs/_ext/mathml.py: the site is built and served offline, so no MathJax or
  KaTeX); a role that runs over several lines is joined onto the first;
* runs of ``>>>`` lines and their output to fenced ``pycon`` blocks;
* a line holding only a literal (or a short capitalised phrase), followed by an indented
  paragraph, to a definition list.

The source files are not touched; only the text griffe hands to mkdocstrings changes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# The modules the API reference renders (docs/api/*.md), each with its public members.
MODULES = (
    "divergences", "divergences.fdiv", "divergences.gaussian", "divergences.estimate",
    "divergences.transport", "divergences.kernels", "divergences.dependence",
    "divergences.coupling", "divergences.losses", "divergences.distributed",
    "divergences.llm", "divergences.text", "divergences.bounds", "divergences.report",
)

_ROLE = re.compile(r":(?:py:)?(func|class|meth|mod|data|attr|exc|obj|const):`([^`]+)`")
_MATH = re.compile(r":math:`([^`]*)`")
_LITERAL_TERM = re.compile(r"^``[^`]+``(?:, ``[^`]+``)*$")
_NAME_TERM = re.compile(r"^\*{0,2}[A-Za-z_]\w*(?:, *\*{0,2}[A-Za-z_]\w*)*(?: *:.*)?$")
_UNDERLINE = re.compile(r"^(-{3,}|={3,})$")
# A short capitalised phrase alone on its line (no final punctuation) followed by an indented
# paragraph: the reST definition lists of the module docstrings ("Point clouds", "Weights").
_TEXT_TERM = re.compile(r"^[A-Z][A-Za-z0-9 ,'()/-]{0,38}[A-Za-z0-9)]$")


def _blank(out: list[str]) -> None:
    """A fenced block cannot interrupt a paragraph: end it with a blank line."""
    if out and out[-1].strip():
        out.append("")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _rendered_identifiers(root: griffe.Object) -> set[str]:
    """Every identifier the API pages render: modules, their exports, the exports' members.

    Read from griffe's tree (no import of the package: no torch at documentation time).
    """
    out: set[str] = set()
    for name in MODULES:
        module = root if name == root.path else root[name.split(".", 1)[1]]
        out.add(name)
        exports = module.exports
        names = ([str(e) for e in exports] if exports is not None
                 else [n for n, m in module.members.items() if not n.startswith("_")])
        for member in names:
            obj = module.members.get(member)
            if obj is None or obj.is_module:
                continue
            path = f"{name}.{member}"
            out.add(path)
            target = obj.final_target if obj.is_alias else obj
            if target.is_class:
                out.update(f"{path}.{a}" for a in target.members if not a.startswith("_"))
    return out


class RstMarkup(griffe.Extension):
    """Rewrite reST roles, math, doctest blocks and literal definition lists as Markdown."""

    def __init__(self) -> None:
        super().__init__()
        self._known: set[str] | None = None
        self._done: set[int] = set()

    @property
    def known(self) -> set[str]:
        assert self._known is not None
        return self._known

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if self._known is None:
            self._known = _rendered_identifiers(obj.package)
        if obj.docstring is not None and id(obj.docstring) not in self._done:
            self._done.add(id(obj.docstring))
            obj.docstring.value = self.convert(obj.docstring.value, obj)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # The top-level package is not passed to on_object.
        self.on_object(obj=pkg)

    # ----------------------------------------------------------------------------------------

    def convert(self, text: str, obj: griffe.Object) -> str:
        text = _MATH.sub(lambda m: f":math:`{' '.join(m.group(1).split())}`", text)
        lines = text.split("\n")
        out: list[str] = []
        i = 0
        fence = False
        section = False  # inside a NumPy-style section (after an underlined heading)
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            indent = _indent(line)
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if stripped.startswith("```"):
                fence = not fence
                out.append(line)
                i += 1
                continue
            if fence:
                out.append(line)
                i += 1
                continue
            if stripped.startswith(">>>"):
                block = []
                while i < len(lines) and lines[i].strip():
                    block.append(lines[i][len(indent):] if lines[i].startswith(indent)
                                 else lines[i].strip())
                    i += 1
                _blank(out)
                out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```", ""]
                section = False
                continue
            if stripped.startswith(".. math::"):
                body = [stripped[len(".. math::"):].strip()]
                i += 1
                while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
                    body.append(lines[i].strip())
                    i += 1
                _blank(out)
                out += [f"{indent}$$", *(indent + b for b in body if b), f"{indent}$$", ""]
                continue
            if stripped and _UNDERLINE.match(nxt.strip()) and len(nxt.strip()) >= len(stripped):
                out += [f"{indent}**{stripped}**", ""]
                section = True
                i += 2
                continue
            term = (_LITERAL_TERM.match(stripped) or (section and _NAME_TERM.match(stripped))
                    or (not section and _TEXT_TERM.match(stripped)))
            if term and nxt.strip() and _indent(nxt) > indent:
                text_term = not section and _TEXT_TERM.match(stripped)
                out.append(indent + (f"**{stripped}**" if text_term else self.term(stripped, obj)))
                i += 1
                body_indent = len(_indent(lines[i]))
                first = True
                while i < len(lines):
                    cur = lines[i]
                    if not cur.strip():
                        following = next((x for x in lines[i + 1:] if x.strip()), "")
                        if _indent(following) > indent and not following.strip().startswith(">>>"):
                            out.append("")
                            i += 1
                            continue
                        break
                    if _indent(cur) <= indent:
                        break
                    body = self.inline(cur[body_indent:] if len(_indent(cur)) >= body_indent
                                       else cur.strip(), obj)
                    out.append(f"{indent}{':   ' if first else '    '}{body}")
                    first = False
                    i += 1
                out.append("")
                continue
            out.append(self.inline(line, obj))
            i += 1
        return "\n".join(out)

    def term(self, stripped: str, obj: griffe.Object) -> str:
        if stripped.startswith("``"):
            return self.inline(stripped, obj)
        names, _, kind = stripped.rstrip(":").partition(":")
        shown = ", ".join(f"`{n.strip()}`" for n in names.split(","))
        kind = kind.strip()
        return f"{shown} ({self.inline(kind, obj)})" if kind else shown

    def inline(self, line: str, obj: griffe.Object) -> str:
        line = _MATH.sub(lambda m: f"${m.group(1).strip()}$", line)
        return _ROLE.sub(lambda m: self.role(m.group(1), m.group(2), obj), line)

    def role(self, kind: str, target: str, obj: griffe.Object) -> str:
        target = target.strip()
        short = target.startswith("~")
        name = target.lstrip("~").lstrip(".")
        shown = name.rsplit(".", 1)[-1] if short else name
        if kind in ("func", "meth"):
            shown += "()"
        path = self.resolve(name, obj)
        return f"[`{shown}`][{path}]" if path else f"`{shown}`"

    def resolve(self, name: str, obj: griffe.Object) -> str | None:
        """The rendered identifier ``name`` refers to from ``obj``, or ``None``."""
        scopes = []
        node: griffe.Object | None = obj
        while node is not None:
            scopes.append(node.path)
            node = node.parent
        # Public face of a private module: divergences.estimate._mi -> divergences.estimate.
        public = [s for s in scopes if not any(p.startswith("_") for p in s.split("."))]
        candidates = [name] + [f"{s}.{name}" for s in public]
        for c in candidates:
            if c in self.known:
                return c
        return None
