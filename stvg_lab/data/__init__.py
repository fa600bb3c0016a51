"""Samples, real-format loaders (HC-STVG v1/v2, VidSTG) and the synthetic benchmark."""
