"""The results store: one SQLite file per project (db.py), its schema migrations (migrations.py)
and its export to CSV and Parquet (export.py). Torch-free; imports the base modules and laws/
(the interval shapes its migrations rewrite) only.
"""
