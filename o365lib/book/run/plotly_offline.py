"""An offline plotly renderer for notebooks that become book pages.

plotly's default notebook output is its own mimetype, which myst-nb does not render (the
figure comes out blank), and plotly's stock HTML renderers point at a CDN for plotly.js or
MathJax. The renderer here emits a ``text/html`` div plus the call that draws it, with neither
plotly.js nor MathJax included or linked: the book ships plotly.min.js once through the local
Sphinx extension ``book/_ext/plotly_offline.py``. It is registered next to plotly's mimetype
renderer so JupyterLab still shows its interactive figure.
"""

from __future__ import annotations

import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

#: Name of the renderer in ``plotly.io.renderers``.
RENDERER_NAME = "o365_offline_html"
#: The default renderer the chapters use: plotly's mimetype plus the offline HTML.
DEFAULT_RENDERERS = f"plotly_mimetype+{RENDERER_NAME}"


class OfflineHtmlRenderer(MimetypeRenderer):
    """Render a figure as ``text/html`` that relies on a page-level ``window.Plotly``.

    No ``<script src=...>`` is written: no CDN, no 3.5 MB copy of plotly.js per figure.
    """

    def __init__(self, *, config: dict | None = None, default_height: str = "480px"):
        self.config = {"responsive": True, "displaylogo": False, **(config or {})}
        self.default_height = default_height

    def to_mimebundle(self, fig_dict):
        html = pio.to_html(
            fig_dict,
            config=self.config,
            include_plotlyjs=False,
            include_mathjax=False,
            full_html=False,
            default_width="100%",
            default_height=self.default_height,
            validate=False,
        )
        return {"text/html": html}


def register_offline_renderer(*, make_default: bool = True) -> str:
    """Register :class:`OfflineHtmlRenderer` (idempotent) and, by default, make it the default.

    Returns the name of plotly's default renderer afterwards.
    """
    pio.renderers[RENDERER_NAME] = OfflineHtmlRenderer()
    if make_default:
        pio.renderers.default = DEFAULT_RENDERERS
    return pio.renderers.default
