"""Training one model: the GPT family (model.py), its optimizers (optim.py), the loop (trainer.py),
the validation bits-per-byte it reports (bpb.py), the run folder it leaves (run_folder.py), and
what a run costs in memory and achieves in FLOP/s (memory.py, mfu.py). Imports the base modules
and data/ only: nothing here knows about studies, stores or reports.
"""
