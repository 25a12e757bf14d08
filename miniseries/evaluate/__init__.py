"""Evaluation: validation bits-per-byte on a fixed packing (bpb.py) and the CORE benchmark."""
