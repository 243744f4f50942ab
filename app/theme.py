"""Look of the page: a calm Gradio theme and a little CSS (passed to ``launch``, as Gradio 6 wants)."""

from __future__ import annotations

import gradio as gr

CSS = """
#intro h1 { margin-bottom: 0.2em; }
#intro p { font-size: 1.05em; }
.subtle, .subtle p { color: var(--body-text-color-subdued); font-size: 0.92em; }
.section-title h3 { margin: 0.4em 0.6em 0.2em; }
"""


def theme() -> gr.themes.Base:
    """The app's theme (indigo accents on a soft neutral background)."""
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate")
