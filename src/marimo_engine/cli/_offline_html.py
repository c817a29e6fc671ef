"""Make a `marimo export html` page self-contained: marimo's frontend inlined.

`marimo export html` writes a page whose JavaScript, stylesheets and fonts
load from a public CDN (`https://cdn.jsdelivr.net/npm/@marimo-team/frontend@
VERSION/dist/`), so without internet the page stays blank. The same files
ship inside the marimo package (`marimo/_static/`); this module puts the
ones the page can need into the page itself:

- Stylesheets the page links are inlined in place as `<style>` elements,
  with the fonts and images they reference as `data:` URLs. Each carries
  `data-vite-dev-id="NAME.css"`, as Vite's development server marks the
  styles it injects: marimo copies a page stylesheet into its widgets' shadow
  roots (tables, for one) only when it comes from its CDN or is so marked,
  and tells them apart by that id.
- The JavaScript modules reachable from the entry module (static and dynamic
  imports) are stored gzip-compressed and base64-encoded in one inert
  `<script type="application/octet-stream">` element. A small loader
  decompresses them (`DecompressionStream`), turns each into a `blob:` URL,
  registers an import map naming them, and imports the entry module.
  Browsers refuse module scripts from `file://` URLs (CORS), which is why
  the modules cannot simply be written next to the report.
- Module sources are rewritten once, here: a relative import
  (`"./cells-X.js"`) becomes the bare specifier `"@marimo-frontend/cells-X.js"`
  that the import map resolves; `import.meta.url` (a `blob:` URL cannot be
  the base of a relative URL) becomes the page's address; Vite's preload
  helper is replaced by one that injects a chunk's stylesheets from the
  page (Vite's own would add `<link>` elements pointing at the CDN).

The page then renders from a `file://` URL with no network: Chromium,
Firefox 113+ and Safari 16.4+ (import maps and `DecompressionStream`).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from marimo_engine.cli.report import ReportError

__all__ = ["inline_frontend_assets", "marimo_static_dir"]

SPECIFIER_PREFIX = "@marimo-frontend/"
"""The bare module specifier prefix that the page's import map resolves."""

_CDN = re.compile(r"https?://[^\s\"'()]*?/@marimo-team/frontend@[^/\s\"']+/dist/")
_TAG = re.compile(r"""<(?:link|script)\b(?:[^>"']|"[^"]*"|'[^']*')*>(?:\s*</script>)?""", re.I)
_ATTRIBUTE = re.compile(r"""\s([a-zA-Z-]+)(?:=("[^"]*"|'[^']*'|[^\s>]+))?""")
# A relative module path as a JavaScript string: "./x.js", './x.js' or `./x.js`.
_RELATIVE_JS = re.compile(r"""(["'`])\./([A-Za-z0-9_.~-]+\.js)\1""")
_CSS_URL = re.compile(r"""url\(\s*(["']?)\./([A-Za-z0-9_.~-]+)\1\s*\)""")
_INLINE_TYPES = {
    ".woff2": "font/woff2",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_PRELOAD_HELPER = "preload-helper-"
_PRELOAD_EXPORT = re.compile(r"export\s*\{\s*(\w+)\s+as\s+(\w+)\s*\}\s*;?\s*$")


def marimo_static_dir() -> Path:
    """Return the folder of marimo's frontend build inside the installed package.

    Raises:
        ReportError: The folder or its `assets/` is missing.
    """
    import marimo

    folder = Path(marimo.__file__).parent / "_static"
    if not (folder / "assets").is_dir():
        raise ReportError(
            f"marimo's frontend files are not at {str(folder)!r}; reinstall marimo "
            "(pip install --force-reinstall marimo)."
        )
    return folder


@dataclass
class _Page:
    entry: str | None = None
    stylesheets: list[str] = field(default_factory=list)


def inline_frontend_assets(html: str, *, static_dir: Path | None = None) -> str:
    """Return `html` (a `marimo export html` page) with marimo's frontend inside it.

    Args:
        html: The exported page, whose assets point at marimo's CDN.
        static_dir: marimo's `_static` folder; `None` finds it in the
            installed marimo package.

    Returns:
        The page, which loads nothing from the network: no CDN `<link>` or
        `<script src>` is left, stylesheets are inline, and the modules are
        in the page, compressed: about 10 MB with marimo 0.25.

    Raises:
        ReportError: The page has no CDN entry module, or a file it
            names is not in marimo's package (a marimo version mismatch).
    """
    static = static_dir or marimo_static_dir()
    assets = static / "assets"
    page = _Page()

    def replace(match: re.Match[str]) -> str:
        return _replace_tag(match.group(0), page, assets)

    html = _TAG.sub(replace, html)
    if page.entry is None:
        raise ReportError(
            "The exported page has no marimo entry module from the CDN to inline; "
            "marimo's export format may have changed."
        )
    modules = _module_closure(page.entry, assets)
    # The page's own stylesheets are inline already; the bundle holds the ones
    # that chunks load later.
    stylesheets = {
        path.name: _inline_css_urls(path.read_text(encoding="utf-8"), assets)
        for path in sorted(assets.glob("*.css"))
        if path.name not in page.stylesheets
    }
    bundle = {
        "entry": page.entry,
        "js": modules,
        "css": stylesheets,
        "loaded": page.stylesheets,
    }
    packed = base64.b64encode(
        gzip.compress(
            json.dumps(bundle, separators=(",", ":")).encode("utf-8"), compresslevel=6, mtime=0
        )
    ).decode("ascii")
    tail = (
        f'<script type="application/octet-stream" id="marimo-engine-frontend">{packed}</script>\n'
        f"<script>{_LOADER}</script>\n"
    )
    if "</body>" not in html:
        return html + tail
    head, _, rest = html.rpartition("</body>")
    return f"{head}{tail}</body>{rest}"


def _attributes(tag: str) -> dict[str, str]:
    opening = tag.split(">", 1)[0]
    found: dict[str, str] = {}
    for name, value in _ATTRIBUTE.findall(opening):
        found[name.lower()] = value.strip("\"'")
    return found


def _replace_tag(tag: str, page: _Page, assets: Path) -> str:
    attributes = _attributes(tag)
    url = attributes.get("src") or attributes.get("href") or ""
    prefix = _CDN.match(url)
    if prefix is None:
        return tag
    path = url[prefix.end() :].split("?", 1)[0]
    name = path.removeprefix("assets/")
    if tag.lower().startswith("<script"):
        if attributes.get("type") == "module" and path.startswith("assets/"):
            _require(assets / name)
            page.entry = name
        return ""
    rel = attributes.get("rel", "").lower()
    if rel == "stylesheet" and path.startswith("assets/"):
        css = _require(assets / name).read_text(encoding="utf-8")
        page.stylesheets.append(name)
        return f'<style data-vite-dev-id="{name}">{_inline_css_urls(css, assets)}</style>'
    # Icons, the manifest, preloads and modulepreloads: the page renders without
    # them (the modules themselves come from the bundle).
    return ""


def _require(path: Path) -> Path:
    if not path.is_file():
        raise ReportError(
            f"The exported page needs {path.name!r}, which is not in marimo's package at "
            f"{str(path.parent)!r}: the export and the installed marimo disagree."
        )
    return path


def _inline_css_urls(css: str, assets: Path) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        kind = _INLINE_TYPES.get(Path(name).suffix.lower())
        target = assets / name
        if kind is None or not target.is_file():
            # Fallback font formats (woff, ttf) after a woff2: browsers that read
            # woff2 never fetch them.
            return match.group(0)
        data = base64.b64encode(target.read_bytes()).decode("ascii")
        return f'url("data:{kind};base64,{data}")'

    # Keep the CSS from ending the <style> element early.
    return _CSS_URL.sub(replace, css).replace("</style", "<\\/style")


def _module_closure(entry: str, assets: Path) -> dict[str, str]:
    """Every module reachable from `entry`, its source rewritten for the import map."""
    modules: dict[str, str] = {}
    pending = [entry]
    while pending:
        name = pending.pop()
        if name in modules:
            continue
        source = _require(assets / name).read_text(encoding="utf-8")
        found = [m.group(2) for m in _RELATIVE_JS.finditer(source)]
        pending.extend(n for n in found if (assets / n).is_file())
        modules[name] = _rewrite_module(name, source, assets)
    return modules


def _rewrite_module(name: str, source: str, assets: Path) -> str:
    if name.startswith(_PRELOAD_HELPER):
        exported = _PRELOAD_EXPORT.search(source.strip())
        if exported is None:
            raise ReportError(
                f"marimo's {name!r} no longer ends with its export clause; "
                "the offline report needs updating for this marimo version."
            )
        return (
            "const __preload=(load,deps)=>{for(const dep of deps||[])"
            "if(String(dep).endsWith('.css'))globalThis.__marimoEngineCss(dep);"
            f"return load()}};export{{__preload as {exported.group(2)}}};"
        )

    def relative(match: re.Match[str]) -> str:
        quote, target = match.group(1), match.group(2)
        if not (assets / target).is_file():
            return match.group(0)
        return f"{quote}{SPECIFIER_PREFIX}{target}{quote}"

    source = _RELATIVE_JS.sub(relative, source)
    return source.replace("import.meta.url", "location.href")


# Runs at the end of <body>: unpack the bundle, map every module to a blob: URL
# with an import map, import the entry. An error is shown on the page, since a
# blank page would say nothing.
_LOADER = """
(async () => {
  const packed = document.getElementById("marimo-engine-frontend").textContent;
  const bytes = Uint8Array.from(atob(packed), (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  const bundle = JSON.parse(await new Response(stream).text());
  const loaded = new Set(bundle.loaded);
  globalThis.__marimoEngineCss = (dep) => {
    const name = String(dep).split("/").pop();
    if (loaded.has(name) || !(name in bundle.css)) return;
    loaded.add(name);
    const style = document.createElement("style");
    style.dataset.viteDevId = name;
    style.textContent = bundle.css[name];
    document.head.appendChild(style);
  };
  const imports = {};
  for (const [name, source] of Object.entries(bundle.js)) {
    const blob = new Blob([source], { type: "text/javascript" });
    imports["@marimo-frontend/" + name] = URL.createObjectURL(blob);
  }
  const map = document.createElement("script");
  map.type = "importmap";
  map.textContent = JSON.stringify({ imports });
  document.head.appendChild(map);
  await import("@marimo-frontend/" + bundle.entry);
})().catch((error) => {
  console.error(error);
  const note = document.createElement("pre");
  note.textContent = "This report could not start marimo's viewer: " + error;
  document.body.prepend(note);
});
"""
