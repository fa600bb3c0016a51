"""Figures and widgets: the video box player and the drawing functions behind it.

* :mod:`stvg_lab.viz.draw`: pure functions, no widgets: :func:`draw_frame` (a frame with gt
  green, think blue, pred red, a legend and the time), :func:`frame_strip` (paper Fig. 3,
  5, 6), :class:`PlayerItem` (a sample and its tubes), :func:`score_items`, :func:`frame_ious`.
* :mod:`stvg_lab.viz.player`: :class:`Player` (ipywidgets), :func:`static_view` (the
  fallback for saved or headless notebooks), :func:`demo_items` (jittered gt for demos),
  :func:`items_from_run` (an evaluation run's ``predictions.jsonl``),
  :func:`load_player_samples`, :func:`filter_items`.
"""

from stvg_lab.viz.draw import (
    COLOURS,
    PlayerItem,
    display_frame_numbers,
    display_size,
    draw_frame,
    draw_item_frame,
    encode_png,
    figure_png,
    frame_ious,
    frame_strip,
    score_items,
)
from stvg_lab.viz.player import (
    DEMO_SOURCE,
    Player,
    demo_items,
    filter_items,
    headline_viou,
    items_from_run,
    load_player_samples,
    static_view,
)

__all__ = [
    "COLOURS",
    "DEMO_SOURCE",
    "Player",
    "PlayerItem",
    "demo_items",
    "display_frame_numbers",
    "display_size",
    "draw_frame",
    "draw_item_frame",
    "encode_png",
    "figure_png",
    "filter_items",
    "frame_ious",
    "frame_strip",
    "headline_viou",
    "items_from_run",
    "load_player_samples",
    "score_items",
    "static_view",
]
