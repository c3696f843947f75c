"""GeoJSON visuals drawn as SVG on the server: no map library, no tiles, nothing fetched.

Nextmv's console draws these on a tiled map; offline there is no map to draw on,
so the features are projected (Web Mercator) and fitted to the frame. Points,
lines and polygons (and their Multi forms) keep the Leaflet style options a model
may set in ``properties.style`` (color, weight, opacity, fillColor, fillOpacity,
dashArray, radius); hovering a feature shows its id and ``properties.metadata``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from html import escape
from typing import Any

WIDTH, HEIGHT, PAD = 960.0, 540.0, 24.0
MAX_FEATURES = 20_000
PALETTE = ("#1f5fd6", "#d9480f", "#2b8a3e", "#ae3ec9", "#c92a2a", "#0c8599", "#e67700")

Point = tuple[float, float]


def render_map(content: Any) -> tuple[str, str]:
    """(SVG markup, problem); the SVG is empty when nothing could be drawn."""
    try:
        return _render(content)
    except (TypeError, ValueError, OverflowError) as exc:  # a model's malformed GeoJSON
        return "", f"this GeoJSON could not be drawn: {exc}"


def _render(content: Any) -> tuple[str, str]:
    features = list(_features(content))[:MAX_FEATURES]
    shapes = [(f, list(_rings(f.get("geometry")))) for f in features]
    points = [p for _, rings in shapes for _, ring in rings for p in ring]
    if not points:
        return "", "no drawable GeoJSON features (expected a FeatureCollection)"
    project = _fit([_mercator(p) for p in points])
    body = [_shape(n, f, rings, project) for n, (f, rings) in enumerate(shapes) if rings]
    svg = (
        f'<svg class="map" viewBox="0 0 {WIDTH:.0f} {HEIGHT:.0f}" role="img" '
        f'aria-label="Map of {len(body)} features" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )
    return svg, ""


def _features(content: Any) -> Iterator[dict[str, Any]]:
    if isinstance(content, list):
        for item in content:
            yield from _features(item)
    elif isinstance(content, dict):
        kind = content.get("type")
        if kind == "FeatureCollection":
            for item in content.get("features") or []:
                if isinstance(item, dict):
                    yield item
        elif kind == "Feature":
            yield content


def _rings(geometry: Any) -> Iterator[tuple[str, list[Point]]]:
    """(kind, coordinates) pieces: "point", "line" or "polygon" rings."""
    if not isinstance(geometry, dict):
        return
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "GeometryCollection":
        for part in geometry.get("geometries") or []:
            yield from _rings(part)
        return
    kind = str(kind)
    shape = _SHAPES.get(kind)
    if shape is None or not isinstance(coords, list):
        return
    if kind == "MultiPolygon":  # rings of every polygon
        parts = [ring for poly in coords if isinstance(poly, list) for ring in poly]
    elif kind.startswith("Multi") or kind == "Polygon":  # a list of points, lines or rings
        parts = coords
    else:
        parts = [coords]
    for part in parts:
        if shape == "point":
            ring = _points([part])
            if ring:
                yield "point", ring
        elif (ring := _points(part)) and len(ring) > 1:
            yield shape, ring


_SHAPES = {
    "Point": "point",
    "MultiPoint": "point",
    "LineString": "line",
    "MultiLineString": "line",
    "Polygon": "polygon",
    "MultiPolygon": "polygon",
}


def _points(raw: Any) -> list[Point]:
    out: list[Point] = []
    for item in raw if isinstance(raw, list) else []:
        if (
            isinstance(item, list | tuple)
            and len(item) >= 2
            and all(isinstance(v, int | float) and math.isfinite(v) for v in item[:2])
        ):
            out.append((float(item[0]), max(-85.0, min(85.0, float(item[1])))))
    return out


def _mercator(point: Point) -> Point:
    lon, lat = point
    return lon, math.degrees(math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)))


def _fit(points: list[Point]) -> Any:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    span = max(x1 - x0, (y1 - y0) * WIDTH / HEIGHT, 1e-9)
    scale = (WIDTH - 2 * PAD) / span
    ox = (WIDTH - (x1 - x0) * scale) / 2
    oy = (HEIGHT - (y1 - y0) * scale) / 2

    def project(point: Point) -> Point:
        x, y = _mercator(point)
        return ox + (x - x0) * scale, HEIGHT - (oy + (y - y0) * scale)

    return project


def _shape(
    n: int, feature: dict[str, Any], rings: list[tuple[str, list[Point]]], project: Any
) -> str:
    props = _mapping(feature.get("properties"))
    style = _mapping(props.get("style"))
    color = _text(style.get("color")) or PALETTE[n % len(PALETTE)]
    stroke = (
        f'stroke="{color}" stroke-width="{_num(style.get("weight"), 3)}" '
        f'stroke-opacity="{_num(style.get("opacity"), 1)}" stroke-linejoin="round"'
    )
    if dash := _text(style.get("dashArray")):
        stroke += f' stroke-dasharray="{dash}"'
    fill = _text(style.get("fillColor")) or color
    parts = []
    for kind, ring in rings:
        xy = [project(p) for p in ring]
        if kind == "point":
            x, y = xy[0]
            radius = _num(style.get("radius"), 5)
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{fill}" '
                f'fill-opacity="{_num(style.get("fillOpacity"), 0.9)}" '
                'stroke="#fff" stroke-width="1"/>'
            )
        else:
            d = (
                "M"
                + " L".join(f"{x:.1f},{y:.1f}" for x, y in xy)
                + (" Z" if kind == "polygon" else "")
            )
            area = (
                f'fill="{fill}" fill-opacity="{_num(style.get("fillOpacity"), 0.2)}"'
                if kind == "polygon"
                else 'fill="none"'
            )
            parts.append(f'<path d="{d}" {area} {stroke}/>')
    title = escape(_describe(feature, props))
    return f'<g class="feature" tabindex="0"><title>{title}</title>{"".join(parts)}</g>'


def _describe(feature: dict[str, Any], props: dict[str, Any]) -> str:
    lines = [str(feature.get("id") or props.get("name") or "feature")]
    if isinstance(props.get("popupContent"), str):
        lines.append(props["popupContent"])
    for item in props.get("metadata") or []:
        if isinstance(item, dict) and "key" in item:
            lines.append(f"{item['key']}: {item.get('value')}")
    return "\n".join(lines)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    """A style string safe inside an attribute (colours, dash patterns)."""
    if not isinstance(value, str):
        return ""
    return "".join(c for c in value if c.isalnum() or c in "#(),. %-")[:64]


def _num(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return max(0.0, min(float(value), 100.0))
    return default
