"""The figures of `equalinfo repro`, drawn from the results dict (results.json): bits_per_byte_vs_flops.png, our
version of the paper's Figure 3, and learning_curves.png, each M2's bits/byte against its training steps with the
floors it must beat (report/learning_curves.py). matplotlib is optional: without it the draw functions return False
and the run goes on."""
import math

from equalinfo.report.seeds import floor_margin

CURVE_FLOORS = {"uniform_bits_per_byte": ("uniform", "-."), "unigram_bits_per_byte": ("unigram", ":"),
                "whole_window_bits_per_byte": ("whole window", "--"), "bigram_bits_per_byte": ("bigram", (0, (1, 3)))}


def _pyplot():
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def draw_learning_curves(results, path):
    """One panel per row of results["m2"] (its first M2 size): bits/byte at each evaluation, one line per seed,
    and the row's floors as flat lines, so a flat curve and a short one look different. False without matplotlib
    or without curves (a results.json from before they were recorded)."""
    size = results["preset"]["m2"]["sizes"][0]
    rows = [(name, by_size[size]) for name, by_size in results["m2"].items() if by_size[size].get("learning_curves")]
    plt = _pyplot()
    if plt is None or not rows:
        return False
    columns = min(4, len(rows))
    fig, axes = plt.subplots(math.ceil(len(rows) / columns), columns, figsize=(4 * columns, 3 * math.ceil(
        len(rows) / columns)), squeeze=False)
    for ax, (name, figures) in zip(axes.reshape(-1), rows):
        for seed, curve in enumerate(figures["learning_curves"]):
            ax.plot(curve["steps"], curve["val_bits_per_byte"], marker="o", markersize=3, label=f"seed {seed}")
        for key, value in figures["learning_curves"][0]["floors"].items():
            text, style = CURVE_FLOORS.get(key, (key, "-"))
            ax.axhline(value, color="gray", linestyle=style, linewidth=1, label=text)
        ax.set_title(name, fontsize=7)
        ax.set_xlabel("M2 step", fontsize=7)
        ax.set_ylabel("bits/byte", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5)
    for ax in axes.reshape(-1)[len(rows):]:
        ax.axis("off")
    fig.suptitle(f"M2 {size}: validation bits/byte against training steps, with the floors", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def draw(results, path):
    """bits/byte against FLOPs/byte, one line per method across M2 sizes (the paper's Figure 3), with error bars of
    floor_margin (2 SE, plus the seed std with several seeds) and each method's held-out unigram (dotted) and
    uniform (dash-dot) floors in its colour; needs matplotlib."""
    plt = _pyplot()
    if plt is None:
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
