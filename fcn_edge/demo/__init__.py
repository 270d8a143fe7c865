"""fcn-edge demo: the whole pipeline on synthetic data (pipeline.py) and its report (report.py)."""
