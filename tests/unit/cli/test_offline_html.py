"""Putting marimo's frontend inside an exported page, on a small fake frontend build.

The browser test (tests/integration/cli/test_report_offline.py) proves the
page renders; these pin what the rewriting does, file by file.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from marimo_engine.cli._offline_html import inline_frontend_assets
from marimo_engine.cli.report import ReportError

CDN = "https://cdn.jsdelivr.net/npm/@marimo-team/frontend@0.25.2/dist"
PAGE = f"""<!DOCTYPE html>
<html><head>
<link rel="icon" crossorigin="anonymous" href="{CDN}/favicon.ico" />
<link rel="preload" href="{CDN}/assets/font-A.woff2" as="font" crossorigin="anonymous" />
<script data-marimo="true">window.__MARIMO_MOUNT_CONFIG__ = {{}};</script>
<script type="module" crossorigin src="{CDN}/assets/index-X.js"></script>
<link rel="modulepreload" crossorigin href="{CDN}/assets/a-Y.js">
<link rel="stylesheet" crossorigin href="{CDN}/assets/index-Z.css">
<link rel="stylesheet" href="https://example.org/kept.css">
</head><body><marimo-code hidden="">x</marimo-code></body></html>
"""
FILES = {
    "index-X.js": (
        'import{t as a}from"./a-Y.js";import{t as p}from"./preload-helper-P.js";'
        "const u=new URL(`logo.png`,import.meta.url);"
        "p(()=>import(`./lazy-L.js`),['./lazy-L.js','./lazy-L.css'],import.meta.url);"
        'const s="./not-a-file.js";'
    ),
    "a-Y.js": 'import"./index-X.js";export const t=1;',  # a cycle back to the entry
    "lazy-L.js": "export const lazy=1;",
    "unreachable-U.js": "export const u=1;",
    "preload-helper-P.js": "var n=function(n,r,i){return n()};export{n as t};",
    "index-Z.css": "@font-face{src:url(./font-A.woff2) format('woff2'),url(./font-A.woff)}",
    "lazy-L.css": ".lazy{color:red}",
    "font-A.woff2": "WOFF2",
    "font-A.woff": "WOFF",
}


@pytest.fixture
def static(tmp_path: Path) -> Path:
    assets = tmp_path / "_static" / "assets"
    assets.mkdir(parents=True)
    for name, text in FILES.items():
        (assets / name).write_text(text, encoding="utf-8")
    return tmp_path / "_static"


def _bundle(html: str) -> dict[str, Any]:
    packed = re.search(r'id="marimo-engine-frontend">([^<]*)</script>', html)
    assert packed is not None
    return json.loads(gzip.decompress(base64.b64decode(packed.group(1))))


def test_no_cdn_reference_is_left(static: Path) -> None:
    html = inline_frontend_assets(PAGE, static_dir=static)
    assert CDN not in html
    assert "modulepreload" not in html
    assert '<link rel="stylesheet" href="https://example.org/kept.css">' in html  # not marimo's
    assert "window.__MARIMO_MOUNT_CONFIG__" in html
    # The bundle and its loader come last in <body>, after marimo's own elements.
    assert html.index("<marimo-code") < html.index("marimo-engine-frontend") < html.index("</body>")


def test_page_stylesheets_are_inline_with_their_fonts(static: Path) -> None:
    html = inline_frontend_assets(PAGE, static_dir=static)
    woff2 = base64.b64encode(b"WOFF2").decode()
    assert (
        '<style data-vite-dev-id="index-Z.css">'
        f"@font-face{{src:url(\"data:font/woff2;base64,{woff2}\") format('woff2'),"
        "url(./font-A.woff)}</style>"
    ) in html


def test_modules_reachable_from_the_entry_are_bundled_and_rewritten(static: Path) -> None:
    bundle = _bundle(inline_frontend_assets(PAGE, static_dir=static))
    assert bundle["entry"] == "index-X.js"
    assert set(bundle["js"]) == {"index-X.js", "a-Y.js", "lazy-L.js", "preload-helper-P.js"}
    entry = bundle["js"]["index-X.js"]
    assert 'from"@marimo-frontend/a-Y.js"' in entry
    assert "import(`@marimo-frontend/lazy-L.js`)" in entry
    assert "'@marimo-frontend/lazy-L.js','./lazy-L.css'" in entry
    assert '"./not-a-file.js"' in entry  # not a module of the build: left alone
    assert "import.meta.url" not in entry
    assert 'import"@marimo-frontend/index-X.js"' in bundle["js"]["a-Y.js"]
    helper = bundle["js"]["preload-helper-P.js"]
    assert "__marimoEngineCss" in helper and helper.endswith("export{__preload as t};")
    # Stylesheets loaded later by chunks are in the bundle; the page's own are not.
    assert bundle["css"] == {"lazy-L.css": ".lazy{color:red}"}
    assert bundle["loaded"] == ["index-Z.css"]


def test_a_page_without_marimos_entry_module_is_an_error(static: Path) -> None:
    with pytest.raises(ReportError, match="no marimo entry module"):
        inline_frontend_assets("<html><body></body></html>", static_dir=static)


def test_a_file_missing_from_marimos_package_is_an_error(static: Path) -> None:
    page = PAGE.replace("index-X.js", "index-missing.js")
    with pytest.raises(ReportError, match=r"needs 'index-missing.js'.*disagree"):
        inline_frontend_assets(page, static_dir=static)


def test_the_installed_marimo_build_is_inlined() -> None:
    """The real `_static` folder: the preload helper and the entry are where expected."""
    from marimo_engine.cli._offline_html import marimo_static_dir

    assets = marimo_static_dir() / "assets"
    entry = re.search(
        r'src="\./assets/(index-[^"]+\.js)"', (assets.parent / "index.html").read_text()
    )
    assert entry is not None
    script = f'<script type="module" src="{CDN}/assets/{entry.group(1)}"></script>'
    page = f"<html><head>{script}</head><body></body></html>"
    bundle = _bundle(inline_frontend_assets(page))
    helpers = [name for name in bundle["js"] if name.startswith("preload-helper-")]
    assert len(helpers) == 1 and "__marimoEngineCss" in bundle["js"][helpers[0]]
    assert len(bundle["js"]) > 100
