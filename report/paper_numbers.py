"""The paper's figures our results are printed beside (docs/paper.md: Table 12 CRs, Tables 15-16 bits/byte at 25m and 2b,
Table 3 uniform floors). Keys are our method labels (see `label`)."""

# label: (token CR [Table 12], bits/byte of the 25m M2, bits/byte of the 2b M2) [Tables 15, 16]
PAPER = {
    "Bytes": (1.0, 1.29, 1.03),
    "SentencePiece": (4.28, 1.12, 0.87),
    "AC[v=256]": (5.49, 1.46, 1.46),
    "AC[v=65k]": (10.98, 1.46, 1.46),
    "StaticAC[v=256]": (1.73, 4.61, 4.61),
    "StaticAC[v=65k]": (3.46, 4.60, 4.62),
    "EqualInfoAC[b=16,v=256]": (2.66, 1.47, 0.99),
    "EqualInfoAC[b=16,v=65k]": (5.31, 1.25, 0.94),
    "EqualInfoAC[b=32,v=256]": (3.49, 2.05, 1.65),
    "EqualInfoAC[b=32,v=65k]": (6.97, 1.95, 1.63),
    "EqualInfoAC[b=64,v=256]": (4.16, 1.85, 1.79),
    "EqualInfoAC[b=64,v=65k]": (8.33, 1.82, 1.76),
    "EqualInfoAC[b=128,v=256]": (4.61, 1.71, 1.71),
    "EqualInfoAC[b=128,v=65k]": (9.22, 1.70, 1.67),
    # Table 9 (M1's context reset every other window / never; the paper gives bits/byte only for a 403m M2)
    "EqualInfoAC[b=16,v=256,M1 reset every 2]": (3.40, None, None),
    "EqualInfoAC[b=16,v=256,M1 never reset]": (5.33, None, None),
    "GZip[v=256]": (2.23, 2.34, 1.56),
    "GZip[v=65k]": (4.47, 2.92, 2.26),
}


SHUFFLED = ",windows shuffled"  # the label suffix of the shuffled-window control (train/shuffled_windows.py)


def label(method, window_bits=None, bits_per_token=None, delimit=True, m1_reset_every=1, shuffled=False,
          seq_len=None):
    """The paper's name of a dataset: Bytes, SentencePiece, AC[v=256], EqualInfoAC[b=16,v=65k], ...; our
    delimiting-cell windows carry the paper's name, its zero-padded ones (delimit=False) add ",zero-pad", and the
    Table 9 ablation (M1's context reset every k windows, or never: m1_reset_every k or None) ",M1 reset every k"
    or ",M1 never reset"; the shuffled-window control (shuffled=True) ",windows shuffled"; a row length of its own
    (seq_len, Table 6's byte-matched rows) ",L=seq_len"."""
    if method == "bytes":
        return "Bytes"
    if method == "spm":
        return "SentencePiece"
    v = {8: "256", 16: "65k"}.get(bits_per_token, str(1 << bits_per_token))
    names = {"ac": "AC", "staticac": "StaticAC", "gzip": "GZip"}
    if method == "equalinfo":
        reset = ("" if m1_reset_every == 1 else ",M1 never reset" if m1_reset_every is None
                 else f",M1 reset every {m1_reset_every}")
        length = "" if seq_len is None else f",L={seq_len}"
        return (f"EqualInfoAC[b={window_bits},v={v}{'' if delimit else ',zero-pad'}{reset}{length}"
                f"{SHUFFLED if shuffled else ''}]")
    return f"{names[method]}[v={v}]"


def unshuffled(name):
    """The label of the row a shuffled-window control controls (the label itself when it is no control)."""
    return name.replace(SHUFFLED, "")
