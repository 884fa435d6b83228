"""Statistics and reference figures for reporting results: standard errors, unigram floors, the paper's numbers."""
