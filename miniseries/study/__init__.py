"""Many trainings as one study: what to run (runspec.py), where and how each run starts (launch.py),
the sweep that runs them (sweep.py), seed noise (seed_noise.py), the fits kept in a project's store
and the design rules read from them (stored_fits.py), a project's results read back (results.py),
the two sides of a comparison (compare_sides.py), and what a plan costs before it runs
(plan_cost.py). Imports every layer below it; never report/ or jobs/.
"""
