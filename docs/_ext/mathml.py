"""LaTeX formulas of the documentation as MathML, rendered when the site is built.

The site is built and read offline (no MathJax or KaTeX from a CDN), and browsers display
MathML natively. Formulas are written ``$...$`` (inline) and ``$$...$$`` (display) in the
pages; the docstrings' ``:math:`...``` roles and ``.. math::`` blocks become the same
(docs/_ext/rst_markup.py). ``pymdownx.arithmatex`` (generic mode, mkdocs.yml) finds them in
the Markdown, skipping code, and wraps each in ``<span class="arithmatex">\\(...\\)</span>``
or ``<div class="arithmatex">\\[...\\]</div>``; :func:`render_page` (run by the
``on_page_content`` hook, docs/_ext/hooks.py) replaces those with ``<math>`` elements.

latex2mathml accepts much that it cannot render: an unknown command comes out as its own
name, ``\\frac{a}`` as a fraction with one part. :func:`render` checks its output and raises
:class:`FormulaError` for those, so a formula is either rendered right or reported (a
warning naming the page and the formula, which fails the strict build; the formula is then
shown as code).

latex2mathml's output is then adjusted so that browsers (MathML Core, as Chromium implements
it) show what TeX would:

* ``mathvariant`` other than ``normal`` is ignored there, so ``\\mathbb E``, ``\\mathbf 1``
  and the like are written as the Unicode mathematical alphanumeric characters (𝔼, 𝟏);
  capital Greek is upright; a symbol typed as Unicode (``≤``) is an operator;
* a sign after an opening bracket or an operator is unary (no binary spacing), and function
  names (``\\log``) get TeX's thin spaces;
* the rows of a ``.. math::`` block (``\\\\``, aligned at ``&``) become a table, and the
  limits of ``\\min``, ``\\max``, ``\\lim``, ``\\sup``, ``\\inf`` go below in display;
* browsers do not wrap a line inside MathML, so a long inline formula is cut into several
  ``<math>`` elements after its top-level relations and signs.
"""

from __future__ import annotations

import html
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable

from latex2mathml.converter import convert

__all__ = ["FormulaError", "render", "render_page"]


class FormulaError(ValueError):
    """A formula that cannot be rendered faithfully; the message says why."""


_NS = ' xmlns="http://www.w3.org/1998/Math/MathML"'
# Elements with a fixed number of children (MathML Core), so that a missing argument is seen.
_ARITY = {"mfrac": 2, "msub": 2, "msup": 2, "msubsup": 3, "munder": 2, "mover": 2,
          "munderover": 3, "mroot": 2}
# mathvariant -> the prefix of the Unicode names of its characters.
_VARIANTS = {
    "bold": "BOLD", "italic": "ITALIC", "bold-italic": "BOLD ITALIC",
    "double-struck": "DOUBLE-STRUCK", "script": "SCRIPT", "bold-script": "BOLD SCRIPT",
    "fraktur": "FRAKTUR", "bold-fraktur": "BOLD FRAKTUR", "sans-serif": "SANS-SERIF",
    "monospace": "MONOSPACE",
}
_TOKEN = re.compile(
    r'<(?P<tag>mi|mn|mo)(?P<before>[^>]*?) mathvariant="(?P<variant>[\w-]+)"(?P<after>[^>]*)>'
    r"(?P<text>[^<]*)</(?P=tag)>")
_MI = re.compile(r"<mi>(?P<text>[^<]*)</mi>")
_MTEXT = re.compile(r"<mtext(?P<attrs>[^>]*)>(?P<text>[^<]*)</mtext>")
_ROW = re.compile(r"\\\\")
_CELL = re.compile(r"(?<!\\)&")
# \log x: a thin space around a function name (latex2mathml writes it as a plain identifier,
# which touches its neighbours), as TeX does; none before a bracket or after an operator.
_NAME = r"<mi>(?:log|ln|exp|det|tr|sin|cos|tanh)</mi>"
_FUNCTION = re.compile(rf"((?<!<msub>)(?<!<msup>){_NAME}|<msub>{_NAME}<m[in]>[^<]*</m[in]></msub>)"
                       r"(?=<m(?!o[^>]*>(?:&#x0002[89];|\[|\]|&#x0007[BD];)))")
_FUNCTION_AFTER = re.compile(
    r"(</m(?:i|n|sub|sup|subsup|row|frac|sqrt|text|under|over)>|&#x00029;</mo>)"
    rf"(?=<msub>{_NAME}|{_NAME})")
# A sign at the start of a group or after an operator or an opening bracket is unary, as TeX
# reads it; MathML Core spaces every + and - in the middle of a row as binary: -log(-t) would
# read "- log( - t)".
_OPENER = r"(?:&#x00028;|\(|\[|&#x0005B;|&#x0007B;|\{)"
_CLOSER = r"(?:&#x00029;|\)|\]|&#x0005D;|&#x0007D;|\}|&#x0007C;|\||&#x02016;|&#x027E9;|!|&#x02032;)"
_UNARY = re.compile(
    r"(<m(?:row|td|sub|sup|subsup|frac|sqrt|root|under|over|underover|style|ath)\b[^>/]*>"
    rf"|<mo\b[^>]*>(?:{_OPENER}|(?!{_CLOSER}</mo>)[^<]*)</mo>)"
    r"<mo>(&#x02212;|&#x0002B;|&#x000B1;)</mo>")
_TEXT_ESCAPES = re.compile(r"\\([_%&$#{}])")


def _styled(char: str, variant: str) -> str | None:
    """``char`` in the mathematical alphabet ``variant`` (𝔼 for E, double-struck), if any."""
    try:
        name = unicodedata.name(char)
    except ValueError:
        return None
    name = re.sub(r"^(LATIN|GREEK) ", "", name).replace(" LETTER ", " ")
    prefix = _VARIANTS[variant]
    for candidate in (f"MATHEMATICAL {prefix} {name}", f"{prefix} {name}"):
        try:
            return unicodedata.lookup(candidate)
        except KeyError:
            continue
    return None


def _restyle(m: re.Match[str]) -> str:
    variant, text = m.group("variant"), html.unescape(m.group("text"))
    if variant not in _VARIANTS:
        return m.group(0)
    styled = [_styled(c, variant) for c in text]
    if None in styled:
        return m.group(0)
    tag = m.group("tag")
    return f"<{tag}{m.group('before')}{m.group('after')}>{''.join(styled)}</{tag}>"


def _operator(m: re.Match[str]) -> str:
    """A symbol typed as Unicode (``‖``, ``≤``) is an operator, not an identifier; a capital
    Greek letter (``\\Gamma``) is upright."""
    text = html.unescape(m.group("text"))
    if len(text) == 1 and unicodedata.category(text) in ("Sm", "Po"):
        return f"<mo>{m.group('text')}</mo>"
    if len(text) == 1 and "\u0391" <= text <= "\u03a9":   # capital Greek is upright, as in TeX
        return f'<mi mathvariant="normal">{m.group("text")}</mi>'
    return m.group(0)


def _plain_text(m: re.Match[str]) -> str:
    """``\\text{gap\\_scale}``: latex2mathml keeps the backslash of an escaped character."""
    text = _TEXT_ESCAPES.sub(r"\1", m.group("text"))
    return f"<mtext{m.group('attrs')}>{text}</mtext>"


def _aligned(tex: str) -> str:
    """Rows (``\\\\``) aligned at ``&``, as Sphinx's ``.. math::`` reads them, as an array
    (latex2mathml leaves a bare ``&`` in its output)."""
    if "\\begin" in tex or not (_ROW.search(tex) or _CELL.search(tex)):
        return tex
    rows = [r for r in _ROW.split(tex) if r.strip()]
    columns = max(len(_CELL.findall(r)) for r in rows) + 1
    align = "c" if columns == 1 else ("rl" * columns)[:columns]
    body = r" \\ ".join(rows)
    return rf"\begin{{array}}{{{align}}}{body}\end{{array}}"


_LIMIT = re.compile(r"<msub><mo>(?:min|max|lim|sup|inf)</mo>")


def _limits_below(mathml: str) -> str:
    """In a display formula the limits of min, max, lim, sup and inf go below, as in TeX
    (latex2mathml writes them as subscripts, unlike those of a sum)."""
    root = ET.fromstring(mathml.replace(_NS, "", 1))
    for el in root.iter("msub"):
        if el[0].tag == "mo" and el[0].text in ("min", "max", "lim", "sup", "inf"):
            el.tag = "munder"
    body = "".join(ET.tostring(c, encoding="unicode") for c in root)
    return mathml[: mathml.index(">") + 1] + body + "</math>"


def _check(mathml: str) -> None:
    try:
        root = ET.fromstring(mathml)
    except ET.ParseError as exc:   # not expected from latex2mathml; reported all the same
        raise FormulaError(f"malformed MathML ({exc})") from None
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        want = _ARITY.get(tag)
        if want is not None and len(el) != want:
            raise FormulaError(f"<{tag}> needs {want} parts, got {len(el)} "
                               "(a missing argument in braces?)")
        if el.text and "\\" in el.text:
            raise FormulaError(f"unknown command {el.text.strip()}")


def render(tex: str, display: bool = False) -> str:
    """MathML for the LaTeX ``tex``, inline or ``display``; :class:`FormulaError` if it
    cannot be rendered faithfully (a syntax error, an unknown command, a missing argument).

    >>> render(r"\\alpha_1")
    '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline"><mrow><msub><mi>&#x003B1;</mi><mn>1</mn></msub></mrow></math>'
    """
    tex = " ".join(tex.split())
    if not tex:
        raise FormulaError("empty formula")
    if display:
        tex = _aligned(tex)
    try:
        mathml = convert(tex, display="block" if display else "inline")
    except Exception as exc:   # latex2mathml raises its own bare exception classes
        reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
        raise FormulaError(f"latex2mathml cannot parse it ({reason})") from None
    mathml = _MTEXT.sub(_plain_text, mathml)
    mathml = _TOKEN.sub(_restyle, mathml)
    mathml = _MI.sub(_operator, mathml)
    mathml = _UNARY.sub(r'\1<mo lspace="0" rspace="0">\2</mo>', mathml)
    mathml = _FUNCTION.sub(r'\1<mspace width="0.167em" />', mathml)
    mathml = _FUNCTION_AFTER.sub(r'\1<mspace width="0.167em" />', mathml)
    _check(mathml)
    if display and _LIMIT.search(mathml):
        mathml = _limits_below(mathml)
    return mathml


# A long inline formula is cut after its top-level relations, signs and commas (outside
# brackets) into several <math> elements, so that a line can wrap between them: browsers do
# not break lines inside MathML. The cut operators keep their infix spacing.
_BREAK_AFTER = set("=≠≈≤≥<>→+−±,")
_OPEN, _CLOSE = set("([{⟨"), set(")]}⟩")
BREAK_LONGER_THAN = 24   # characters of the formula's text


def _breakable(mathml: str) -> str:
    root = ET.fromstring(mathml.replace(_NS, "", 1))
    if len("".join(root.itertext())) <= BREAK_LONGER_THAN:
        return mathml
    row = root[0] if len(root) == 1 and root[0].tag == "mrow" else root
    chunks: list[list[ET.Element]] = [[]]
    depth = 0
    for i, child in enumerate(row):
        chunks[-1].append(child)
        text = (child.text or "").strip() if child.tag == "mo" else ""
        if text in _OPEN:
            depth += 1
        elif text in _CLOSE:
            depth = max(depth - 1, 0)
        elif (text in _BREAK_AFTER and depth == 0 and child.get("lspace") is None
              and len(chunks[-1]) > 1 and i < len(row) - 1):
            child.set("form", "infix")
            chunks.append([])
    if len(chunks) == 1:
        return mathml
    head = mathml[: mathml.index(">") + 1]
    return "".join(head + "<mrow>" + "".join(ET.tostring(c, encoding="unicode") for c in chunk)
                   + "</mrow></math>" for chunk in chunks)


# pymdownx.arithmatex's generic output (mkdocs.yml: generic: true, the default wraps).
_INLINE = re.compile(r'<span class="arithmatex">\\\((?P<tex>.*?)\\\)</span>', re.DOTALL)
_DISPLAY = re.compile(r'<div class="arithmatex">\\\[(?P<tex>.*?)\\\]</div>', re.DOTALL)
_ANCHOR = re.compile(r'id="(divergences[\w.]*)"')


def render_page(content: str, page: str, warn: Callable[[str], None]) -> str:
    """``content`` (a page's HTML) with every formula as MathML (a long inline one in pieces
    that a line can wrap between).

    A formula that cannot be rendered is shown as code, and ``warn`` gets a message that
    names the page, the documented object it sits under (the nearest ``divergences.*``
    anchor before it) and the formula.
    """

    def replace(m: re.Match[str], display: bool) -> str:
        tex = html.unescape(m.group("tex")).strip()
        try:
            mathml = render(tex, display)
        except FormulaError as exc:
            anchors = _ANCHOR.findall(content, 0, m.start())
            where = f"{page} ({anchors[-1]})" if anchors else page
            warn(f"{where}: cannot render the formula `{tex}`: {exc}")
            code = f"<code>{html.escape(tex)}</code>"
            return f'<div class="math-error"><pre>{code}</pre></div>' if display else code
        if display:
            return f'<div class="math-display">{mathml}</div>'
        return _breakable(mathml)

    content = _DISPLAY.sub(lambda m: replace(m, True), content)
    return _INLINE.sub(lambda m: replace(m, False), content)
