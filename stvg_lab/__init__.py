"""stvg-lab: a workbench that reproduces STVG-o1 (Thinking With Bounding Boxes).

Layers, each importing only those above it (see README "Code layout"):
geometry -> answer -> rewards, metrics -> data, video -> model, infer -> train -> analysis, viz.
"""

__version__ = "0.1.0"
