"""The target schema per domain as pictures: Graphviz `dot` draws them as inline SVG when it is installed.

Graphviz is the well-kept layout tool here (Debian/Ubuntu package `graphviz`, Homebrew `graphviz`); the
PyPI packages that bundle a Graphviz build are young single-maintainer wrappers, so none is a dependency.
Without `dot` the report is still written: the template draws each domain as tables of columns with their
foreign keys listed, and says that Graphviz was not found.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import dataclass, field

DOT_TIMEOUT = 30  # seconds per domain; the largest domain takes a few milliseconds


@dataclass
class Diagrams:
    tool: str | None  # "Graphviz 2.43.0 (dot)", or None when dot was not found or failed
    svg: dict[str, str] = field(default_factory=dict)  # domain -> inline <svg>
    problem: str | None = None  # why there are no pictures


def dot_source(domain: dict, foreign_keys: list[dict]) -> str:
    """One domain: its tables as boxes of columns (PK, FK marked), an arrow per foreign key; tables of other
    domains that it references are drawn as dashed boxes named domain.table."""
    name = domain["name"]
    lines = [f'digraph "{name}" {{', '  graph [rankdir=LR, bgcolor="transparent", nodesep=0.3, ranksep=0.7, '
             'fontname="Helvetica"];', '  node [shape=plain, fontname="Helvetica", fontsize=10];',
             '  edge [color="#5b6b7f", arrowsize=0.7, fontname="Helvetica", fontsize=8];']
    own = {t["qualified"] for t in domain["tables"]}
    for table in domain["tables"]:
        rows = "".join(
            f'<tr><td align="left" port="{_port(c["name"])}_in">{_mark(c)}{html.escape(c["name"])}</td>'
            f'<td align="left" port="{_port(c["name"])}_out"><font color="#6b7785">{html.escape(c["type"].lower())}</font></td></tr>'
            for c in table["columns"])
        label = (f'<table border="0" cellborder="1" cellspacing="0" cellpadding="3" color="#9aa8b8">'
                 f'<tr><td colspan="2" bgcolor="#dbe7f5"><b>{html.escape(table["qualified"])}</b></td></tr>{rows}</table>')
        lines.append(f'  "{_id(table["qualified"])}" [label=<{label}>];')
    outside = set()
    for fk in foreign_keys:
        if fk["table"] not in own:
            continue
        ref = fk["references"]
        if ref not in own and ref not in outside:
            outside.add(ref)
            lines.append(f'  "{_id(ref)}" [shape=box, style="dashed,rounded", fontsize=10, color="#9aa8b8", '
                         f'label="{html.escape(ref)}"];')
        # from the referencing column's right edge to the referenced key's left edge (the graph runs left to right)
        tail = f'"{_id(fk["table"])}":"{_port(fk["columns"][0])}_out":e' if fk["columns"] else f'"{_id(fk["table"])}"'
        head = f'"{_id(ref)}":"{_port(fk["ref_columns"][0])}_in":w' if ref in own and fk["ref_columns"] else f'"{_id(ref)}"'
        lines.append(f'  {tail} -> {head} [tooltip="{html.escape(fk["name"])}"];')
    lines.append("}")
    return "\n".join(lines)


def _mark(column: dict) -> str:
    return ("<b>PK</b> " if column["pk"] else "") + ("<i>FK</i> " if column["fk"] else "")


def _id(name: str) -> str:
    return re.sub(r"[^\w.]", "_", name)


def _port(name: str) -> str:
    return "c_" + re.sub(r"\W", "_", name)


def dot_version(dot: str) -> str:
    out = subprocess.run([dot, "-V"], capture_output=True, text=True, timeout=DOT_TIMEOUT)
    found = re.search(r"version\s+(\S+)", out.stderr + out.stdout)
    return f"Graphviz {found.group(1)} (dot)" if found else "Graphviz (dot)"


def draw(schema: dict, dot: str | None = None) -> Diagrams:
    """Inline SVG per domain with `dot` (found on PATH unless given); never raises: the report is written anyway."""
    dot = dot or shutil.which("dot")
    if not dot:
        return Diagrams(None, problem="Graphviz (dot) was not found on PATH")
    try:
        tool = dot_version(dot)
        pictures = {}
        for domain in schema["domains"]:
            done = subprocess.run([dot, "-Tsvg"], input=dot_source(domain, schema["foreign_keys"]), capture_output=True,
                                  text=True, timeout=DOT_TIMEOUT)
            if done.returncode != 0:
                return Diagrams(None, problem=f"{tool} failed: {done.stderr.strip()[:300]}")
            pictures[domain["name"]] = inline_svg(done.stdout)
        return Diagrams(tool, pictures)
    except (OSError, subprocess.SubprocessError) as exc:
        return Diagrams(None, problem=f"Graphviz (dot) could not be run: {exc}")


def inline_svg(text: str) -> str:
    """dot's SVG document as an element for HTML: no XML declaration, DOCTYPE or comments; scales to the page."""
    start = text.find("<svg")
    svg = re.sub(r"<!--.*?-->", "", text[start:], flags=re.S).strip()
    return re.sub(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"',
                  lambda m: f'<svg style="max-width:100%;height:auto" width="{m[1]}pt" height="{m[2]}pt"', svg, count=1)
