#!/usr/bin/env python3
"""Fails when a relative link or anchor in README.md or docs/*.md does not resolve.

The docs point into each other and into the tree (`configuration.md#prices`,
`../envoy/prices.yaml`); a renamed heading or a moved file would leave a dead link that
nobody clicks until a reader does. Checks every `[text](target)` outside code: the file
or folder exists, and an `#anchor` is a heading of the target page (GitHub's slugs);
and every page in docs/ is linked from the README.

Usage: docs_links.py [ROOT]   (default: the repository this file is in)
"""

import re
import sys
from pathlib import Path

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text):
    """The text without fenced code blocks and code spans (a link text in backticks
    stays a link: only its text is dropped)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page):
    seen = {}
    out = set()
    for h in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        s = slug(h)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def check(root):
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    errors, links = [], 0
    cache = {}
    readme_targets = set()
    for page in pages:
        for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            links += 1
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(root)}: {target}"
            if not dest.exists():
                errors.append(f"{where}: no such file or folder")
                continue
            if page.name == "README.md" and page.parent == root:
                readme_targets.add(dest)
            if anchor:
                if dest.suffix != ".md" or dest.is_dir():
                    errors.append(f"{where}: an anchor into a file that is not Markdown")
                    continue
                if dest not in cache:
                    cache[dest] = anchors(dest)
                if anchor not in cache[dest]:
                    errors.append(f"{where}: no heading #{anchor} in {dest.relative_to(root)}")
    for page in pages[1:]:
        if page.resolve() not in readme_targets:
            errors.append(f"README.md: no link to {page.relative_to(root)}")
    return links, len(pages), errors


def main(argv):
    root = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent
    links, pages, errors = check(root.resolve())
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} of {links} links in {pages} pages do not resolve")
        return 1
    print(f"every relative link and anchor resolves ({links} links in {pages} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
