"""The runbook, served by the daemon itself (GET /runbook): the alert rules link to it.

The rules' `runbook_url` is `http://<instance>/runbook#<alert>`, the address Prometheus scrapes
this daemon on, so the link always opens the runbook of the version that raised the alert, with no
URL to configure or keep in step. The text is alerts/RUNBOOK.md, shipped in the package (a
symlink in the source tree, a copy in a wheel); each heading gets the id GitHub would give it, so
`#cookiefilemissing` works here and on a rendered copy alike. Only the few Markdown forms the
runbook uses are rendered: headings, paragraphs, lists, code fences, `code` and **bold**.
"""

from __future__ import annotations

import functools
import html
import re
from importlib import resources

_INLINE = (
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
)


def text() -> str:
    """The runbook's Markdown, from the installed package."""
    return resources.files("cookie_supervisor").joinpath("RUNBOOK.md").read_text("utf-8")


def anchor(heading: str) -> str:
    """GitHub's heading id: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    return {anchor(h) for h in re.findall(r"^#{1,6} (.+)$", markdown, re.M)}


def _inline(line: str) -> str:
    out = html.escape(line, quote=False)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def render(markdown: str) -> str:
    """The runbook as a small HTML page with an id on every heading."""
    out: list[str] = []
    para: list[str] = []
    code = False

    def flush() -> None:
        if para:
            out.append("<p>" + "<br>\n".join(_inline(p) for p in para) + "</p>")
            para.clear()

    for line in markdown.splitlines():
        if line.startswith("```"):
            flush()
            out.append("</pre>" if code else "<pre>")
            code = not code
        elif code:
            out.append(html.escape(line, quote=False))
        elif m := re.match(r"(#{1,6}) (.+)$", line):
            flush()
            n, title = len(m.group(1)), m.group(2)
            out.append(f'<h{n} id="{anchor(title)}">{_inline(title)}</h{n}>')
        elif not line.strip():
            flush()
        else:
            para.append(line)
    flush()
    if code:
        out.append("</pre>")
    body = "\n".join(out)
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>cookie-supervisor runbook'
        "</title><style>body{max-width:60em;margin:auto;font-family:sans-serif}"
        "pre{background:#f4f4f4;padding:.5em;overflow-x:auto}</style></head><body>\n"
        f"{body}\n</body></html>\n"
    )


@functools.cache
def page() -> bytes:
    return render(text()).encode()
