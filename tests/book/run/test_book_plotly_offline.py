"""The offline renderer writes drawable HTML that names no CDN and embeds no plotly.js."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

from o365lib.book.run.plotly_offline import DEFAULT_RENDERERS, OfflineHtmlRenderer, register_offline_renderer


def test_offline_html_has_no_script_source_and_no_cdn():
    fig = go.Figure(go.Bar(x=["a", "b"], y=[3, 1]), layout={"title": {"text": "$x^2$ title"}})
    bundle = OfflineHtmlRenderer().to_mimebundle(fig.to_dict())
    html = bundle["text/html"]
    assert set(bundle) == {"text/html"}
    assert "Plotly.newPlot" in html and 'class="plotly-graph-div"' in html
    assert "<script src" not in html and "cdn" not in html.lower() and "mathjax" not in html.lower()
    assert len(html) < 20_000  # plotly.js (3+ MB) is not inlined


def test_register_sets_the_default_next_to_the_mimetype():
    previous = pio.renderers.default
    try:
        pio.renderers.default = "json"
        register_offline_renderer()
        assert pio.renderers.default == DEFAULT_RENDERERS
        bundle = pio.renderers._build_mime_bundle(go.Figure().to_dict())  # what a chapter's figure shows
        assert set(bundle) == {"application/vnd.plotly.v1+json", "text/html"}
        assert "Plotly.newPlot" in bundle["text/html"] and "<script src" not in bundle["text/html"]
    finally:
        pio.renderers.default = previous
