"""bits_per_byte_vs_flops.png of `equalinfo repro`: our version of the paper's Figure 3, drawn from the results
dict (results.json). matplotlib is optional: without it draw() returns False and the run goes on."""
from equalinfo.report.seeds import floor_margin


def draw(results, path):
    """bits/byte against FLOPs/byte, one line per method across M2 sizes (the paper's Figure 3), with error bars of
    floor_margin (2 SE, plus the seed std with several seeds) and each method's held-out unigram (dotted) and
    uniform (dash-dot) floors in its colour; needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = results["preset"]["m2"]["sizes"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colors = plt.get_cmap("tab20").colors
    for index, (name, by_size) in enumerate(results["m2"].items()):
        color = colors[index % len(colors)]
        xs = [by_size[s]["flops_per_byte"] for s in sizes]
        ys = [by_size[s]["bits_per_byte"] for s in sizes]
        bars = [floor_margin(by_size[s]) or 0.0 for s in sizes]  # 2 SE (+ seed std): the "below floor" margin
        ax.errorbar(xs, ys, yerr=bars, marker="o", color=color, linestyle="-" if index < 20 else "--", capsize=3,
                    label=name)
        # the method's floors, as a segment across its FLOPs range (a little wider, so one size shows too)
        span = (min(xs) / 1.15, max(xs) * 1.15)
        ax.hlines(by_size[sizes[0]]["unigram_bits_per_byte"], *span, colors=[color], linestyles=":", linewidth=1.2)
        ax.hlines(by_size[sizes[0]]["uniform_bits_per_byte"], *span, colors=[color], linestyles="-.", linewidth=0.8,
                  alpha=0.5)
    ax.plot([], [], color="gray", linestyle=":", label="held-out unigram floor")
    ax.plot([], [], color="gray", linestyle="-.", alpha=0.5, label="uniform floor")
    ax.set_xscale("log")
    ax.set_xlabel("inference FLOPs/byte")
    ax.set_ylabel("bits/byte (validation)")
    ax.set_title("bits/byte vs FLOPs/byte (cf. the paper's Figure 3); bars: 2 SE (+ seed std)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
