"""The HTTP API's reference page, rendered on the server from the app's OpenAPI schema.

FastAPI's stock /docs and /redoc pages load Swagger UI / ReDoc scripts from a CDN, which the
panel's policy forbids (no outside URLs, ``script-src 'self'``, and the server may be offline).
This page is plain HTML with no script: every endpoint with its fields, types, defaults, limits and
descriptions, and a link to the machine-readable ``/openapi.json``.
"""

from __future__ import annotations

import html
import re
from typing import Any

_STYLE_LINK = '<link rel="stylesheet" href="/static/style.css">'
_LIMIT_KEYS = (("minimum", "≥"), ("maximum", "≤"), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<"),
               ("minLength", "min length"), ("maxLength", "max length"))


def _prose(text: str) -> str:
    """Escaped paragraph text; docstring literals (double backticks) become <code>."""
    return re.sub(r"``(.+?)``", r"<code>\1</code>", html.escape(" ".join(text.split())))


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    node: Any = spec
    for part in ref.lstrip("#/").split("/"):
        node = node.get(part, {})
    return node


def _type_text(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        kinds = [_type_text(option) for option in schema["anyOf"]]
        return " or ".join(k for k in kinds if k != "null") + (" (optional)" if "null" in kinds else "")
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    if schema.get("format") == "binary" or schema.get("contentMediaType") == "application/octet-stream":
        return "file"
    return str(schema.get("type", "any"))


def _number(value: Any) -> str:
    # pydantic writes integer bounds of int fields as floats (4294967295.0)
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _limits_text(schema: dict[str, Any]) -> str:
    parts = [f"{label} {_number(schema[key])}" for key, label in _LIMIT_KEYS if key in schema]
    for option in schema.get("anyOf", []):
        parts += [f"{label} {_number(option[key])}" for key, label in _LIMIT_KEYS if key in option]
    return ", ".join(parts)


def _field_rows(spec: dict[str, Any], operation: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(name, where, type, default, limits, description) for query parameters and form fields."""
    rows = []
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        rows.append((parameter["name"], parameter.get("in", ""), _type_text(schema),
                     repr(schema["default"]) if "default" in schema else ("required" if parameter.get("required") else ""),
                     _limits_text(schema), parameter.get("description", schema.get("description", ""))))
    for media, content in operation.get("requestBody", {}).get("content", {}).items():
        body = _resolve(content.get("schema", {}), spec)
        required = set(body.get("required", []))
        for name, field in body.get("properties", {}).items():
            default = repr(field["default"]) if "default" in field else ("required" if name in required else "")
            rows.append((name, "form" if "form" in media else "body", _type_text(field), default,
                         _limits_text(field), field.get("description", "")))
    return rows


def render_api_page(spec: dict[str, Any]) -> str:
    """The whole reference page for an OpenAPI ``spec`` (as ``app.openapi()`` returns it)."""
    info = spec.get("info", {})
    esc = html.escape
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(info.get('title', 'API'))}: HTTP API</title>", _STYLE_LINK, "</head>",
           '<body class="api-docs"><main class="api-docs">',
           f"<h1>{esc(info.get('title', 'API'))} {esc(str(info.get('version', '')))}: HTTP API</h1>"]
    for paragraph in str(info.get("description", "")).split("\n\n"):
        if paragraph.strip():
            out.append(f"<p>{_prose(paragraph)}</p>")
    out.append('<p>Machine-readable schema: <a href="/openapi.json">/openapi.json</a> (OpenAPI '
               f"{esc(str(spec.get('openapi', '')))}).</p>")
    for path, methods in spec.get("paths", {}).items():
        for method, operation in methods.items():
            anchor = f"{method}-{path}".replace("/", "-").strip("-")
            out.append(f'<section class="endpoint" id="{esc(anchor)}">')
            out.append(f"<h2><code>{esc(method.upper())} {esc(path)}</code></h2>")
            if operation.get("summary"):
                out.append(f"<p><strong>{esc(operation['summary'])}</strong></p>")
            for paragraph in str(operation.get("description", "")).split("\n\n"):
                if paragraph.strip():
                    out.append(f"<p>{_prose(paragraph)}</p>")
            rows = _field_rows(spec, operation)
            if rows:
                out.append("<table><thead><tr><th>field</th><th>in</th><th>type</th><th>default</th>"
                           "<th>limits</th><th>description</th></tr></thead><tbody>")
                for row in rows:
                    out.append("<tr>" + "".join(f"<td>{_prose(str(cell))}</td>" for cell in row) + "</tr>")
                out.append("</tbody></table>")
            codes = ", ".join(f"{code} {esc(str(answer.get('description', '')))}"
                              for code, answer in operation.get("responses", {}).items())
            if codes:
                out.append(f"<p>Responses: {codes}.</p>")
            out.append("</section>")
    out.append("</main></body></html>")
    return "\n".join(out)
