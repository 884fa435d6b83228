"""results.md of `equalinfo repro`: the paper's tables as markdown, our figures beside the paper's.

Tables 15-16 (bits/byte and FLOPs/byte by M2 size, with standard errors, the floors and whether each figure lies
below the held-out unigram floor), Table 12 (token compression ratios), the rows M2 trains and is evaluated on,
the controls of Equal-Info rows (the floors within a window, report/window_floors.py, and the shuffled-window
control, train/shuffled_windows.py) and the other controls (train/controls.py measures them). A results.json
written before a figure existed renders without it. The input is the results dict that `equalinfo repro` writes as results.json; nothing here
computes a figure, it only lays them out.
"""
from equalinfo.report.paper_numbers import PAPER, unshuffled
from equalinfo.report.seeds import below_floor


def results_markdown(results):
    sizes = results["preset"]["m2"]["sizes"]
    progress = results.get("so_far")
    lines = ["# equalinfo repro: preset results" + (" so far (a run not finished)" if progress else ""), "",
             f"Backend `{results['backend']}`, "
             + (f"{progress['finished']} of {progress['runs']} M2 runs finished (`--so-far`: each row's mean is "
                "over the seeds finished, `n=`; a row with no finished seed is left out), "
                if progress else f"{results['seconds'] / 60:.1f} minutes, ")
             + f"{results['versions'].get('platform', '')}, Python {results['versions']['python']}.", "",
             f"M1 ({results['m1']['config']['d_model']}-dim, {results['m1']['config']['n_layers']} layers): "
             f"{results['m1']['val_bits_per_byte']:.3f} bits/byte on validation (the paper's M1: 1.457).", "",
             "## Bits/byte (FLOPs/byte) by M2 size, like the paper's Tables 15-16", "",
             "| Method | " + " | ".join(f"ours {s}" for s in sizes) + " | ours uniform | ours unigram (held-out) | "
             f"ours unigram (add-one) | below unigram floor? ({' / '.join(sizes)}) | paper 25m | paper 2b |",
             "|---" * (len(sizes) + 7) + "|"]
    for name, by_size in results["m2"].items():
        cells = [f"{_mean_se(by_size[s])} ({by_size[s]['flops_per_byte'] / 1e3:.1f}K)" for s in sizes]
        first = by_size[sizes[0]]
        verdicts = " / ".join({True: "yes", False: "no", None: "unknown"}[below_floor(by_size[s])] for s in sizes)
        paper = PAPER.get(name, (None, None, None))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {first['uniform_bits_per_byte']:.3f} | "
                     f"{first['unigram_bits_per_byte']:.3f} | {_fmt3(first.get('unigram_addone_bits_per_byte'))} | "
                     f"{verdicts} | {_fmt(paper[1])} | {_fmt(paper[2])} |")
    for name, reason in results.get("skipped", {}).items():
        lines.append(f"| {name} | skipped: {reason} |")
    lines += ["", "bits/byte ± its standard error over the evaluated validation rows (delta method for a ratio of row "
              "sums, report/uncertainty.py), and \"by document\" the same with the rows clustered by document "
              "(rows of one document are not independent); with several seeds (m2.seeds) the mean over seeds, and `seed std` their "
              "sample std. The unigram floor is held out: token frequencies of the train side, additive smoothing "
              "chosen by leave-one-out (report/unigram.py), scored on the same validation rows; add-one, the floor "
              "reported before, is unsound for a large vocabulary with few tokens and is shown for comparison only. "
              "\"below unigram floor?\" says yes only when bits/byte + 2 SE (+ the seed std) is below the held-out "
              "floor: a figure within that margin of the floor does not show that M2 learnt anything beyond token "
              "frequencies."]
    lines += ["", "## Token compression ratios, like the paper's Table 12", "",
              "| Method | ours (whole examples) | ours (kept data) | kept fraction | paper |", "|---|---|---|---|---|"]
    for name, sides in results["datasets"].items():
        s = sides["validation"]
        lines.append(f"| {name} | {s['cr_full']:.3f} | {s['cr_kept']:.3f} | {s['kept_fraction']:.2f} | "
                     f"{_fmt(PAPER.get(name, (None,))[0])} |")
    lines += rows_markdown(results["datasets"], results.get("source_mix", {}))
    lines += window_controls_markdown(results["m2"], sizes)
    lines += controls_markdown(results.get("controls", {}))
    return "\n".join(lines) + "\n"


def rows_markdown(datasets, source_mix):
    """The training and validation rows side by side: how many, how many documents they start in, and the share
    of their bytes from each source of the corpus."""
    first = next(iter(datasets.values()), None)
    if first is None or first["validation"].get("documents") is None:
        return []
    sources = sorted({source for shares in source_mix.values() for source in shares})
    return ["", "## Training and validation rows", "",
            "| side | rows | documents the rows start in | bytes | " + " | ".join(sources) + " |",
            "|---" * (4 + len(sources)) + "|",
            *[f"| {side} | {first[side]['examples']:,} | {first[side]['documents']:,} | {first[side]['bytes']:,} | "
              + " | ".join(f"{source_mix.get(side, {}).get(source, 0):.1%}" for source in sources) + " |"
              for side in ("train", "validation")], "",
            "Sources: the share of the rows' text bytes from each source (a JSON-lines record's url prefix, else "
            "its file; data/corpus.py document_sources).",
            "Validation rows are a seeded draw across the whole validation side (data/packing.py draw), not its first "
            "rows in corpus order; every dataset tokenizes the same examples."]


def window_controls_markdown(m2_results, sizes):
    """Per Equal-Info row and M2 size: M2 beside the floors of a model that sees one window and the shuffled-window
    control (a control's own row is in the main table); "learns across windows" only where M2 beats the control
    by more than the noise."""
    rows = [(name, size, by_size[size]) for name, by_size in m2_results.items() for size in sizes
            if size in by_size and "whole_window_bits_per_byte" in by_size[size] and unshuffled(name) == name]
    if not rows:
        return []
    lines = ["", "## Controls of Equal-Info rows: within a window, and across windows", "",
             "| Row | size | ours | whole-window floor | within-window bigram floor | shuffled-window control | "
             "control - ours (margin) | across windows? |", "|---|---|---|---|---|---|---|---|"]
    for name, size, figures in rows:
        control = figures.get("shuffled_control")
        if control is None:
            compared, verdict = "", "no control"
        else:
            margin = "unknown" if control["margin"] is None else f"{control['margin']:.3f}"
            compared = f"{control['difference']:.3f} ({margin})"
            verdict = "learns across windows" if control["learns_across_windows"] else "not shown"
        lines.append(f"| {name} | {size} | {_mean_se(figures)} | {_floor(figures, 'whole_window')} | "
                     f"{_floor(figures, 'bigram')} | {'' if control is None else _fmt3(control['bits_per_byte'])} | "
                     f"{compared} | {verdict} |")
    lines += ["", "The whole-window floor scores each window's bits as one symbol (frequencies of the training "
              "windows), the bigram floor each token from the one before it in its window (report/window_floors.py): "
              "what a model of single windows reaches. The control is M2 trained and evaluated on the same rows with "
              "each row's windows shuffled (same steps and seeds): it can learn only within windows. \"learns across "
              "windows\" only where the control's bits/byte exceeds ours by more than 2 x the SE of the difference "
              "(clustered by document where known) plus the seeds' spread (report/seeds.py beats_control)."]
    return lines


def _floor(figures, name):
    value = figures.get(f"{name}_bits_per_byte")
    return _fmt3(value) if value is not None else f"null ({figures.get(f'{name}_bits_per_byte_null', 'unknown')})"


def controls_markdown(control_results):
    """The controls' section of results.md (train/controls.py says what each measures)."""
    lines = []
    context = control_results.get("ac_context")
    if context:
        lines += ["", "## Control: M1's context in AC", "",
                  f"AC over {context['examples']} validation examples ({context['bytes']:,} bytes), the coder's own "
                  "bits/byte:", "",
                  "| M1 reads | bits/byte |", "|---|---|",
                  f"| restarting every {context['restart_every']} symbols (its training length; what the datasets "
                  f"use) | {context['bits_per_byte_trained_context']:.3f} |",
                  f"| the whole example (extrapolating) | {context['bits_per_byte_whole_example']:.3f} |"]
    windows = control_results.get("windows")
    if windows:
        lines += ["", "## Control: zero padding's trace in Equal-Info tokens (validation, kept tokens)", "",
                  "| Dataset | windows | mean trailing zero bits | last bit 0 | KL(last token) | KL(all tokens) | "
                  "KL(random, same count) |", "|---|---|---|---|---|---|---|"]
        for name, w in windows.items():
            lines.append(f"| {name} | {w['windows']:,} | {w['mean_trailing_zero_bits']:.2f} | "
                         f"{w['last_bit_zero_fraction']:.2f} | {w['last_token_kl']:.3f} | {w['all_tokens_kl']:.3f} | "
                         f"{w['random_kl']:.3f} |")
    return lines


def _mean_se(figures):
    """'4.728 ± 0.012', with the seed std when there are several seeds: '4.728 ± 0.012, seed std 0.020 (n=3)'."""
    text = f"{figures['bits_per_byte']:.3f}"
    if figures.get("bits_per_byte_se") is not None:
        text += f" ± {figures['bits_per_byte_se']:.3f}"
    if figures.get("bits_per_byte_se_clustered") is not None:
        text += f" (by document ± {figures['bits_per_byte_se_clustered']:.3f})"
    seeds = figures.get("seeds") or {}
    if seeds.get("n", 1) > 1:
        text += f", seed std {seeds['std']:.3f} (n={seeds['n']})"
    return text


def _fmt3(value):
    return "" if value is None else f"{value:.3f}"


def _fmt(value):
    return "" if value is None else f"{value:.2f}"
