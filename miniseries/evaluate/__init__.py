"""Evaluation of finished models: the CORE benchmark (core.py), its bundle format (bundle.py), where
a bundle comes from (get_bundle.py, offline_bundle.py, online_bundle.py), and CORE of Hugging Face
models (hf.py). The validation bits-per-byte a run reports while it trains is the trainer's own
(train/bpb.py). Imports the base modules, data/ and train/ (a run folder's model and core.json).
"""
