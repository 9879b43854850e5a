# -*- coding: utf-8 -*-
# Copyright (c) seed.consul_peering contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/*.md as RST pages of the collection's docs site (docs/docsite/rst/, listed in extra-docs.yml).

    docsite.py            write docs/docsite/rst/<name>.rst for every guide in GUIDES, and
                          docs/docsite/extra-docs.yml listing them (`make docsite`)
    docsite.py --check    exit 1 and name the pages that are not what it would write

antsibull-docs takes extra documentation only as RST under docs/docsite/rst/; the Markdown files in
docs/ stay the source (GitHub-style readers and the tarball use them). The conversion covers the
Markdown these files use: headings, paragraphs, lists, fenced code, tables, block quotes, emphasis,
code and links (a link to another guide becomes a reference to its page).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from markdown_it import MarkdownIt

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "docs", "docsite", "rst")
LABEL_PREFIX = "ansible_collections.seed.consul_peering.docsite."
# docs/<name>.md -> its section in extra-docs.yml (the order there is the order here). Left out:
# docs/reliability*.md, docs/compatibility.md and docs/benchmarks.md, reports that test, matrix and bench runs regenerate (a page
# made from them would be stale after every run).
GUIDES = {
    "Guides": ["topologies", "teams", "acl", "security", "awx", "eda", "failover", "lab", "consul-build"],
    "Project": ["architecture", "release", "decisions"],
}
NOT_ON_SITE = ["reliability", "reliability-ha", "compatibility", "benchmarks"]
UNDERLINE = {1: "=", 2: "-", 3: "~", 4: "^", 5: '"', 6: "'"}
LEXERS = {"console", "yaml", "json", "text", "bash", "shell", "python", "ini", "sh", "none"}


def label(name):
    return LABEL_PREFIX + name.replace("-", "_")


def escape(text):
    return re.sub(r"([\\`*|_])", r"\\\1", text)


class Inline:
    """Renders one inline token's children to RST text."""

    def __init__(self, guides):
        self.guides = guides

    def render(self, children):
        parts = []  # (kind, text): kind "t" plain text, "m" inline markup
        i = 0
        while i < len(children):
            tok = children[i]
            if tok.type == "text":
                parts.append(("t", escape(tok.content)))
            elif tok.type in ("softbreak", "hardbreak"):
                parts.append(("t", " "))
            elif tok.type == "code_inline":
                parts.append(("m", "``%s``" % tok.content if tok.content.strip() == tok.content
                              else "``%s``" % tok.content.strip()))
            elif tok.type in ("strong_open", "em_open"):
                close = tok.type.replace("_open", "_close")
                j = i + 1
                while children[j].type != close:
                    j += 1
                inner = "".join(c.content for c in children[i + 1:j])
                mark = "**" if tok.type == "strong_open" else "*"
                parts.append(("m", "%s%s%s" % (mark, escape(inner), mark)))
                i = j
            elif tok.type == "link_open":
                j = i + 1
                while children[j].type != "link_close":
                    j += 1
                text = "".join(c.content for c in children[i + 1:j])
                parts.append(self.link(tok.attrs.get("href", ""), text))
                i = j
            elif tok.type == "html_inline":
                parts.append(("t", escape(tok.content)))
            elif tok.type == "image":
                parts.append(("t", escape(tok.content)))
            else:
                parts.append(("t", escape(tok.content)))
            i += 1
        return self.join(parts)

    def link(self, href, text):
        target = href.split("#")[0]
        if target.endswith(".md") and "/" not in target and target[:-3] in self.guides:
            return ("m", ":ref:`%s <%s>`" % (text.replace("<", "\\<"), label(target[:-3])))
        if re.match(r"https?://", href):
            return ("m", "`%s <%s>`__" % (text.replace("<", "\\<"), href))
        return ("t", escape(text))

    @staticmethod
    def join(parts):
        out = ""
        for k, (kind, text) in enumerate(parts):
            if kind == "m":
                if out and not re.search(r"[\s(\[{'\"/:-]$", out):
                    out += "\\ "
                out += text
                nxt = parts[k + 1][1] if k + 1 < len(parts) else ""
                if nxt and not re.match(r"[\s)\]}'\".,;:!?/-]", nxt):
                    out += "\\ "
            else:
                out += text
        return out


def convert(name, text, guides):
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    inline = Inline(guides)
    out = [".. _%s:" % label(name), ""]
    lists = []  # stack of [kind, counter]
    indent = ""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            title = inline.render(tokens[i + 1].children)
            level = int(tok.tag[1])
            out += [title, UNDERLINE[level] * max(len(title), 3), ""]
            i += 3
            continue
        if tok.type == "paragraph_open":
            body = inline.render(tokens[i + 1].children)
            if lists and tokens[i - 1].type == "list_item_open":
                kind = lists[-1]
                bullet = "- " if kind[0] == "bullet" else "%d. " % kind[1]
                out.append(indent[:-len(bullet)] + bullet + body if len(indent) >= len(bullet) else bullet + body)
            else:
                if out and out[-1] != "":
                    out.append("")
                out.append(indent + body)
                out.append("")
            i += 3
            continue
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            if lists and out and out[-1] != "":
                out.append("")
            lists.append(["bullet" if tok.type == "bullet_list_open" else "ordered",
                          int(tok.attrs.get("start", 1)) - 1])
            i += 1
            continue
        if tok.type == "list_item_open":
            lists[-1][1] += 1
            width = 2 if lists[-1][0] == "bullet" else len("%d. " % lists[-1][1])
            indent += " " * width
            i += 1
            continue
        if tok.type == "list_item_close":
            width = 2 if lists[-1][0] == "bullet" else len("%d. " % lists[-1][1])
            indent = indent[:-width]
            i += 1
            continue
        if tok.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if out and out[-1] != "":
                out.append("")
            i += 1
            continue
        if tok.type in ("fence", "code_block"):
            lang = (tok.info or "").strip().split(" ")[0]
            lang = lang if lang in LEXERS else "text"
            if out and out[-1] != "":
                out.append("")
            out += [indent + ".. code-block:: %s" % lang, ""]
            out += [(indent + "  " + line).rstrip() for line in tok.content.rstrip("\n").split("\n")]
            out.append("")
            i += 1
            continue
        if tok.type == "table_open":
            rows, row = [], None
            j = i + 1
            while tokens[j].type != "table_close":
                t = tokens[j]
                if t.type == "tr_open":
                    row = []
                elif t.type == "tr_close":
                    rows.append(row)
                elif t.type == "inline":
                    row.append(inline.render(t.children))
                j += 1
            out += [indent + ".. list-table::", indent + "  :header-rows: 1", ""]
            for r in rows:
                for c, value in enumerate(r):
                    out.append(indent + ("  * - " if c == 0 else "    - ") + (value or "\\ "))
            out.append("")
            i = j + 1
            continue
        if tok.type == "blockquote_open":
            indent += "  "
            i += 1
            continue
        if tok.type == "blockquote_close":
            indent = indent[:-2]
            i += 1
            continue
        if tok.type == "hr":
            out += ["", "----", ""]
            i += 1
            continue
        if tok.type == "html_block":
            i += 1
            continue
        i += 1
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"
    header = (".. Generated by tests/utils/docsite.py from docs/%s.md: edit that file and run `make docsite`.\n\n"
              % name)
    return header + text


def extra_docs():
    lines = ["---", "# Generated by tests/utils/docsite.py (GUIDES there): run `make docsite`, do not edit.",
             "sections:"]
    for title, names in GUIDES.items():
        lines += ["  - title: %s" % title, "    toctree:"] + ["      - %s" % n for n in names]
    return "\n".join(lines) + "\n"


def pages():
    guides = [g for names in GUIDES.values() for g in names]
    out = {os.path.join(ROOT, "docs", "docsite", "extra-docs.yml"): extra_docs()}
    for name in guides:
        with open(os.path.join(ROOT, "docs", name + ".md")) as f:
            out[os.path.join(OUT, name + ".rst")] = convert(name, f.read(), guides)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for path, text in pages().items():
        current = open(path).read() if os.path.exists(path) else None
        if current != text:
            stale.append(os.path.relpath(path, ROOT))
            if not args.check:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(text)
                print("[docsite] wrote %s" % os.path.relpath(path, ROOT))
    if args.check and stale:
        print("out of sync with docs/*.md (run `make docsite`): %s" % ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
