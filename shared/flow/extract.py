"""Reading an input file into text and pages, by its extension."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePath

TEXT_TYPES = frozenset({".txt", ".md", ".csv", ".json"})
HTML_TYPES = frozenset({".html", ".htm"})
SUPPORTED_TYPES = TEXT_TYPES | HTML_TYPES | {".pdf"}

# Tags whose start or end begins a new line of text.
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    }
)
_HIDDEN_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript"})


class ExtractError(Exception):
    """The file cannot be read as text; the message says why and which types are supported."""


@dataclass(frozen=True)
class Extracted:
    text: str
    pages: list[str]
    warnings: list[str] = field(default_factory=list)


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _pdf_pages(data: bytes) -> list[str]:
    # pypdf is imported here: only workers that meet a PDF pay for it.
    import pypdf
    from pypdf.errors import PyPdfError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        return [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, LookupError, TypeError, AttributeError) as exc:
        raise ExtractError(f"cannot read PDF: {exc}") from exc


def _check_type(file_name: str) -> str:
    suffix = PurePath(file_name).suffix.lower()
    if suffix not in SUPPORTED_TYPES:
        raise ExtractError(
            f"unsupported file type '{suffix or file_name}'; "
            f"supported: {', '.join(sorted(SUPPORTED_TYPES))}"
        )
    return suffix


def extract_file(path: Path) -> Extracted:
    """Text and pages of the file at ``path``. A text file's pages are split at form feeds."""
    _check_type(path.name)
    if not path.is_file():
        raise ExtractError(f"input file {path.name} is missing")
    return extract_bytes(path.name, path.read_bytes())


def extract_bytes(file_name: str, data: bytes) -> Extracted:
    """Text and pages of a file's content held in memory (a sync run), typed by its name."""
    suffix = _check_type(file_name)
    if suffix == ".pdf":
        pages = _pdf_pages(data)
        return Extracted(text="\n\n".join(pages), pages=pages)
    text = _decode(data)
    warnings = []
    if suffix in HTML_TYPES:
        text = html_to_text(text)
    elif suffix == ".json":
        try:
            json.loads(text)
        except ValueError as exc:
            warnings.append(f"{file_name} is not valid JSON: {exc}")
    pages = text.split("\f") if suffix == ".txt" else [text]
    return Extracted(text=text, pages=pages, warnings=warnings)
