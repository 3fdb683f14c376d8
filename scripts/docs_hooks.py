"""MkDocs hooks for the documentation site (mkdocs.yml names this file under ``hooks:``).

- ``<!-- vaekit-options -->`` in a page becomes the table of the estimators' parameters, generated
  from ``vaekit.options.OPTIONS`` (the one declaration that also makes ``vaekit train --help``), so
  the API reference can never disagree with the code.
- Sphinx roles in docstrings (``:class:`~vaekit.errors.DataError```), which mkdocstrings renders
  literally, become plain code: ``DataError``.
"""

from __future__ import annotations

import re

OPTIONS_MARKER = "<!-- vaekit-options -->"
_ROLE = re.compile(r":(?:class|func|meth|data|attr|mod|exc|obj):<code>(~?)([\w.]+)</code>")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(opt, kind: str) -> str:
    if kind not in opt.kinds:
        return "–"
    return f"`{opt.default_for(kind)!r}`"


def options_table() -> str:
    """A Markdown table: every parameter of every registered family's estimator, its defaults, flag and help."""
    from vaekit.options import OPTIONS
    from vaekit.registry import FAMILIES

    families = list(FAMILIES)
    rows = ["| parameter | " + " | ".join(f"`{f.estimator}` default" for f in families) + " | `vaekit train` | what it does |",
            "|---|" + "---|" * (len(families) + 2)]
    for o in OPTIONS:
        flag = f"`{o.cli_flag}`" if o.cli_flag else " / ".join(f"`{v}`" for v in dict.fromkeys(o.extra.get("cli", {}).values())) or "–"
        choices = o.all_choices()
        what = o.help + (f" (one of {', '.join(f'`{c}`' for c in choices)})" if choices else "")
        defaults = " | ".join(_default(o, f.name) for f in families)
        rows.append(f"| `{o.name}` | {defaults} | {flag} | {_cell(what)} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if OPTIONS_MARKER in markdown:
        markdown = markdown.replace(OPTIONS_MARKER, options_table())
    return markdown


def on_page_content(html: str, page, config, files) -> str:
    return _ROLE.sub(lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>", html)
