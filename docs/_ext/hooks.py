"""MkDocs hooks for the documentation site (``hooks:`` in mkdocs.yml).

* The snippets extension reads included files relative to the repository root whatever the
  working directory of ``mkdocs build`` (its ``base_path`` is otherwise relative to it).
* ``<!-- cli-help: report -->`` in a page becomes the output of ``divergences report
  --help``, taken from the parser itself (:func:`divergences.cli.build_parser`), so the
  documented options are the command's options.
* Pages written for GitHub (docs/evidence.md) link to repository files that the site
  includes as pages of its own (benchmarks/RESULTS.md): those links are pointed at the
  site's page, so the same Markdown works on GitHub and on the site.
* Formulas (``$...$``, ``$$...$$``, and the docstrings' ``:math:`` roles and ``.. math::``
  blocks) become MathML when the page is built (docs/_ext/mathml.py); one that cannot be
  rendered is a warning naming the page and the formula, so the strict build fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import posixpath
import re
from pathlib import Path
from typing import Any

import mathml  # docs/_ext/mathml.py: mkdocs puts the hook's folder on sys.path to load it

# Repository file -> the docs page that includes it (docs/benchmarks/*.md use --8<--).
INCLUDED = {
    "benchmarks/RESULTS.md": "benchmarks/RESULTS.md",
    "benchmarks/README.md": "benchmarks/index.md",
}

_LINK = re.compile(r"\]\(([^)\s#]+)(#[^)\s]*)?\)")
_CLI_HELP = re.compile(r"^<!-- cli-help:(?P<words>[\w\s-]*)-->$", re.MULTILINE)
HELP_WIDTH = "92"
# Under "mkdocs.", so that its warnings count in strict mode.
log = logging.getLogger("mkdocs.hooks.divergences")


def _cli_module() -> Any:
    """src/divergences/cli.py loaded on its own: its parser needs only the standard library,
    and importing the package would import torch into the documentation build."""
    path = Path(__file__).resolve().parents[2] / "src" / "divergences" / "cli.py"
    spec = importlib.util.spec_from_file_location("_divergences_cli_for_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli_help(words: list[str]) -> str:
    """``divergences WORDS... --help`` as the parser formats it, at a fixed width."""
    parser = _cli_module().build_parser()
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        return parser.format_help().rstrip()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def on_config(config: Any, **kwargs: Any) -> Any:
    root = str(Path(config.config_file_path).resolve().parent)
    snippets = config.mdx_configs.setdefault("pymdownx.snippets", {})
    snippets["base_path"] = [root]
    return config


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    page_dir = posixpath.dirname(page.file.src_uri)

    def relink(m: re.Match[str]) -> str:
        target, anchor = m.group(1), m.group(2) or ""
        if "://" in target:
            return m.group(0)
        # Resolve against the page's place in the repository (docs/<src_uri>).
        repo_path = posixpath.normpath(posixpath.join("docs", page_dir, target))
        page_path = INCLUDED.get(repo_path)
        if page_path is None:
            return m.group(0)
        return f"]({posixpath.relpath(page_path, page_dir or '.')}{anchor})"

    markdown = _CLI_HELP.sub(
        lambda m: "```text\n" + cli_help(m.group("words").split()) + "\n```", markdown)
    return _LINK.sub(relink, markdown)


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    return mathml.render_page(html, page.file.src_uri, log.warning)
