"""Training recipes: SFT and GRPO with TRL's own trainers (``grpo_video`` makes GRPO see the video).

Submodules are imported explicitly (``from stvg_lab.train.grpo_video import VideoGRPOTrainer``) so that
importing this package does not pull in TRL.
"""
