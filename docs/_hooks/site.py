"""MkDocs hooks of the documentation site.

* The benchmark plot is published from ``benchmarks/results`` (its one home) at the path the
  README uses, so the README's benchmark section, included in the site, renders its image.
* The benchmark page shows the README's "Benchmarks" section (up to the next heading), so the
  figures have one home: ``<!-- README: Benchmarks -->`` in a page is replaced by it.
* The API reference stays complete: any name of ``aiowriter.__all__`` that no reference page
  renders (a new export) is rendered at the end of the reference overview.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

PLOT = "benchmarks/results/throughput.png"
_RENDERED = re.compile(r"^::: aiowriter\.(\w+)\s*$", re.MULTILINE)


def on_files(files: Files, *, config: Any) -> Files:
    root = Path(config["config_file_path"]).parent
    files.append(File.generated(config, PLOT, abs_src_path=str(root / PLOT)))
    return files


_README_SECTION = re.compile(r"^<!-- README: (.+?) -->$", re.MULTILINE)


def _readme_section(root: Path, title: str) -> str:
    text = (root / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise ValueError(f"README.md has no '## {title}' section for the docs")
    return match.group(1).strip()


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Files) -> str:
    root = Path(config["config_file_path"]).parent
    markdown = _README_SECTION.sub(lambda m: _readme_section(root, m.group(1)), markdown)
    if page.file.src_uri != "reference/index.md":
        return markdown
    import aiowriter

    rendered: set[str] = set()
    for file in files.documentation_pages():
        if file.src_uri.startswith("reference/"):
            rendered.update(_RENDERED.findall(Path(file.abs_src_path or "").read_text()))
    modules = {"open_data", "packets"}
    missing = [n for n in aiowriter.__all__ if n not in rendered and n not in modules]
    if not missing:
        return markdown
    blocks = "\n\n".join(f"::: aiowriter.{name}" for name in missing)
    return f"{markdown}\n\n## More public names\n\n{blocks}\n"
