"""What a project shows a person: the report (project_report.py; its tables, tables.py; its
Markdown/HTML renderer, render.py), the figures (plots.py), CORE calibration against GPT-2/GPT-3
(calibrate.py, with the published figures in reference.py), and the cost to reach them
(extrapolate.py, extrapolation_table.py). Reads a project through study/; never trains.
"""
