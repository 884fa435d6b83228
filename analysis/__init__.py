"""The paper's analyses (§5.2, §6) and generation, each run by `equalinfo analyze NAME` or `equalinfo generate`.

    commands.py     the subcommands: argument parsing and the glue from files on disk to the modules below
    common.py       what every analysis shares: datasets and models opened with clear errors, the methods'
                    tokenizers, results written as JSON with a figure beside them
    stability.py    token stability (§6.1, Fig. 8, Tables 7-8): how tokens change when one word in front changes
    positions.py    which Equal-Info window positions an M2 learns, and when (§6.2, Fig. 10)
    uniformity.py   how uniform each method's bits are (§6.3, Figs. 11, 16, 17)
    seq2seq.py      can a Transformer learn to run the coder (§5.2, Table 5)
    generate.py     sampling text from an M2, and timing every part of a step (bytes per step, ms per step)
"""
