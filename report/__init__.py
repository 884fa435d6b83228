"""Statistics and figures for reporting results: standard errors, floors, seeds combined, the paper's numbers beside
ours, results.md and the figure. report/ sits below train/ in the layering: the pipeline gathers its figures into a
results dict and calls these; nothing here imports the pipeline.

    uncertainty.py    standard errors of bits/byte over rows (delta method for a ratio of sums); spread over seeds
    unigram.py        the held-out unigram floor: train-side token frequencies, smoothing chosen by leave-one-out
    window_floors.py  the context-free floors of Equal-Info rows: whole-window unigram and within-window bigram
    learning_curves.py  bits/byte against M2's training steps, with the floors (is a flat row flat or short?)
    seeds.py          several seeds of one M2 combined into one row; the margin a row must clear to beat a floor
                      or its shuffled-window control
    paper_numbers.py  the paper's numbers printed beside ours (Tables 12, 15, 16) and the paper's dataset names
    tables.py         results.md of `equalinfo repro`: Tables 15-16 and 12 shaped, and the controls
    figure.py         bits_per_byte_vs_flops.png, like the paper's Figure 3, and learning_curves.png (needs matplotlib)
"""
