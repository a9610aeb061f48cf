"""Studies built on lowprec (swamping, accuracy, energy); installed as ``lowprec.sims``."""
