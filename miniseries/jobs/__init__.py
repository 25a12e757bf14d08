"""The end-to-end jobs: each trains a study and then writes its report or figure. The demo (the main
job), an ablation (two or more lines compared), and the LR sweep. The only library layer that
imports both study/ and report/.
"""
