"""Reproducing the paper's tables and figures (layer 7: reads evaluation and training outputs).

* :mod:`~stvg_lab.analysis.paper`: the paper's published numbers as data (``assets/paper_tables.yaml``).
* :mod:`~stvg_lab.analysis.grid`: the ablation grid of Tables 5-8 (variants × seeds, cached runs).
* :mod:`~stvg_lab.analysis.tables`: our results in the paper's layouts, beside its numbers (Tables 1, 5-9).
* :mod:`~stvg_lab.analysis.scale`: vIoU of think and pred tubes per object-scale bin (Fig. 4).
* :mod:`~stvg_lab.analysis.tags`: m_tIoU / m_vIoU per value of one difficulty tag (``n_distractors``, ``qtype``, ...).
* :mod:`~stvg_lab.analysis.which_object`: which object a pred box lands on (target, distractor, none) on synthetic clips.
* :mod:`~stvg_lab.analysis.rollouts`: what a sampled answer changes against the greedy one (span, object, boxes).
* :mod:`~stvg_lab.analysis.word_reliance`: whether the answers read each attribute word (own vs a distractor's sentence).
* :mod:`~stvg_lab.analysis.open_vocab`: the open-vocabulary split (Table 4) at toy scale, and the real protocol.
"""

from stvg_lab.analysis.grid import GridResults, GridSpec, RunResult, run_grid, variant_overrides
from stvg_lab.analysis.open_vocab import check_open_vocab_split, cross_dataset_protocol, make_open_vocab_split
from stvg_lab.analysis.paper import paper_row
from stvg_lab.analysis.scale import AREA_BINS, plot_scale, read_per_sample, scale_analysis
from stvg_lab.analysis.tables import ablation_table, complexity_table, heldout_reward_table, results_table
from stvg_lab.analysis.tags import tag_means
from stvg_lab.analysis.which_object import frame_rows, outcome_table

__all__ = [
    "AREA_BINS",
    "GridResults",
    "GridSpec",
    "RunResult",
    "ablation_table",
    "check_open_vocab_split",
    "complexity_table",
    "frame_rows",
    "heldout_reward_table",
    "cross_dataset_protocol",
    "make_open_vocab_split",
    "outcome_table",
    "paper_row",
    "plot_scale",
    "read_per_sample",
    "results_table",
    "run_grid",
    "scale_analysis",
    "tag_means",
    "variant_overrides",
]
