"""Token stability (the paper's §6.1, Fig. 8, Tables 7-8): how much a method's tokens of a fixed sentence change when
one word in front of it changes, and which texts a token stands for.

Protocol (Fig. 8): each word of a list is prepended to one fixed sentence, every string is tokenized by every
method, and the Levenshtein distance between the token sequences of every pair of strings is taken; its
distribution per method is the figure. A tokenizer whose tokens depend only on nearby text (SentencePiece, Bytes)
changes a few tokens; plain AC, whose bits after the word all depend on it, changes nearly all of them.

Word list: the paper samples 500 of 3,000 common English words (a list from ef.com whose licence is not stated).
We ship no list: by default the words are the most frequent lowercase ASCII words (3+ letters) of the embedded
default corpus (Python's own documentation, data/default_corpus.py), sampled with a seed, so the analysis runs
offline; `--word-list FILE` (one word per line) gives another. The fixed sentence is ours (the paper does not
print its own): SENTENCE below.

Table 7 view: the tokens of one word in several contexts (the word's occurrences in the corpus), as the texts of
the tokens (Bytes, SentencePiece) or of the Equal-Info windows (with their token ids) that overlap the word.
Table 8 view: on a corpus sample (the paper: 20 documents x 1,024 bytes), the most frequent token values at window
positions 1 and 2 of EqualInfoAC[b, v=256] and the window texts they occur in: a first token fixes the start of
its window's text, a second token does not.
"""
import itertools
import re
from collections import Counter

import numpy as np

from equalinfo.analysis import common
from equalinfo.ref.symbols import bytes_to_symbols

SENTENCE = b", and then the same sentence follows each word."
WORD_POOL = 1000  # the most frequent corpus words the list is sampled from


# ------------------------------------------------------------------------------------------------ Levenshtein

def levenshtein_pairs(first, second):
    """Levenshtein distances (int64 [P]) between first[p] and second[p], sequences of ints, all pairs at once.

    The classic dynamic program, one row per element of `first`, vectorised over the pairs; within a row the
    insertion chain D[i, j] = min(D[i, j-1] + 1, x_j) is a running minimum of x_j - j (plus j). Sequences are
    padded to a common length; D[len_a, len_b] depends only on the unpadded prefixes, so padding is harmless."""
    count = len(first)
    if count != len(second):
        raise ValueError("first and second must hold the same number of sequences")
    len_a = np.array([len(s) for s in first], dtype=np.int64)
    len_b = np.array([len(s) for s in second], dtype=np.int64)
    width_a, width_b = int(len_a.max(initial=0)), int(len_b.max(initial=0))
    a = np.full((count, max(width_a, 1)), -1, dtype=np.int64)
    b = np.full((count, max(width_b, 1)), -2, dtype=np.int64)
    for p in range(count):
        a[p, :len_a[p]], b[p, :len_b[p]] = first[p], second[p]
    columns = np.arange(width_b + 1, dtype=np.int64)
    previous = np.broadcast_to(columns, (count, width_b + 1)).copy()  # D[0, j] = j
    result = np.where(len_a == 0, len_b, 0)
    for i in range(1, width_a + 1):
        candidates = np.empty_like(previous)
        candidates[:, 0] = i
        candidates[:, 1:] = np.minimum(previous[:, :-1] + (a[:, i - 1:i] != b[:, :width_b]), previous[:, 1:] + 1)
        current = np.minimum.accumulate(candidates - columns, axis=1) + columns
        done = len_a == i
        result[done] = current[done, len_b[done]]
        previous = current
    return result


def pairwise_levenshtein(sequences, chunk=20_000):
    """Distances of every pair (i < j) of sequences, in itertools.combinations order (int64 [n (n-1) / 2])."""
    pairs = list(itertools.combinations(range(len(sequences)), 2))
    out = []
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        out.append(levenshtein_pairs([sequences[i] for i, _ in part], [sequences[j] for _, j in part]))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


# ------------------------------------------------------------------------------------------------ words

def frequent_words(documents, count=WORD_POOL):
    """The `count` most frequent lowercase ASCII words of 3+ letters in the documents (ties by first sight)."""
    counter = Counter()
    for document in documents:
        counter.update(re.findall(rb"(?<![A-Za-z_])[a-z]{3,}(?![A-Za-z_])", document))
    return [word.decode() for word, _ in counter.most_common(count)]


def word_list(documents, n_words, seed, path=None):
    """(words, where they came from): n_words sampled (seeded) from a file's words or the corpus's frequent ones."""
    if path is not None:
        try:
            pool = [line.strip() for line in open(path, encoding="utf-8") if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            raise common.AnalysisError(f"--word-list {path}: cannot read it ({error})") from None
        source = f"{path} ({len(pool)} words)"
    else:
        pool = frequent_words(documents)
        source = (f"the {len(pool)} most frequent lowercase ASCII words (3+ letters) of the corpus, "
                  f"sampled with seed {seed}")
    if len(pool) < 2:
        raise common.AnalysisError("the word list needs at least 2 words")
    chosen = np.random.default_rng(seed).choice(len(pool), size=min(n_words, len(pool)), replace=False)
    return [pool[i] for i in sorted(chosen)], source


def contexts_of(word, documents, n_contexts, before=24, after=16):
    """Up to n_contexts snippets (bytes, offset of the word) around whole-word occurrences of `word`."""
    pattern = re.compile(rb"(?<![A-Za-z])" + re.escape(word.encode()) + rb"(?![A-Za-z])")
    found = []
    for document in documents:
        for match in pattern.finditer(document):
            start = max(0, match.start() - before)
            found.append((document[start:match.end() + after], match.start() - start))
            if len(found) >= n_contexts:
                return found
    return found


# ------------------------------------------------------------------------------------------------ views

def _piece_text(data):
    return data.decode("utf-8", errors="replace")


def segmentation(tokenizers, spec, snippet, offset, word_length):
    """The tokens (or windows) of a snippet that overlap the word at [offset, offset + word_length), as
    [{"text": ..., "tokens": [...]}]; None for methods whose tokens have no text of their own (AC, GZip)."""
    name, method, b, n = spec
    symbols = bytes_to_symbols(snippet)
    end = offset + word_length
    if method == "bytes":
        return [{"text": _piece_text(snippet[i:i + 1]), "tokens": [int(snippet[i])]} for i in range(offset, end)]
    if method == "spm":
        coder = tokenizers.method(method, b, n)
        tokens, pieces, position = coder.tokens(symbols), [], 0
        for token in tokens:
            text = coder.decode(np.array([token]), 1).astype(np.uint8).tobytes()
            if position < end and position + len(text) > offset:
                pieces.append({"text": _piece_text(text), "tokens": [int(token)]})
            position += len(text)
        return pieces
    if method == "equalinfo":
        from equalinfo.ref.tokens import bits_to_tokens

        [windows] = tokenizers.windows([symbols], b)
        return [{"text": _piece_text(snippet[w.start:w.start + w.length]),
                 "tokens": bits_to_tokens(w.bits, n).tolist()}
                for w in windows if w.start < end and w.start + w.length > offset]
    return None


def position_tokens(tokenizers, documents, b, n_docs=20, doc_bytes=1024, top=3, examples=4):
    """Table 8 / App. D.8: token values at window positions 1 and 2 of EqualInfoAC[b, v=256] on a corpus sample.

    For each position: distinct values seen, the share of them seen more than once, the first-byte agreement (over
    all occurrences, the share whose window text starts with the byte most common for that token value: 1.0 if a
    token value always fixes its window's first byte), and the `top` most frequent values with the most common
    texts of the windows they occur in (and those texts' common prefix)."""
    texts = [d[:doc_bytes] for d in documents[:n_docs]]
    all_windows = tokenizers.windows([bytes_to_symbols(t) for t in texts], b)
    by_position = {1: Counter(), 2: Counter()}
    window_texts = {1: {}, 2: {}}
    for text, windows in zip(texts, all_windows):
        for window in windows:
            data = text[window.start:window.start + window.length]
            for position in (1, 2):
                value = int(np.packbits(window.bits[8 * (position - 1):8 * position])[0])
                by_position[position][value] += 1
                window_texts[position].setdefault(value, Counter())[data] += 1
    result = {}
    for position, counter in by_position.items():
        entries = []
        for value, hits in counter.most_common(top):
            seen = window_texts[position][value]
            prefix = _common_prefix(list(seen))
            entries.append({"token": value, "count": hits, "common_prefix": _piece_text(prefix),
                            "texts": [[_piece_text(t), c] for t, c in seen.most_common(examples)]})
        agreeing = sum(max(Counter(t[:1] for t, c in window_texts[position][v].items() for _ in range(c)).values())
                       for v in counter)
        result[position] = {"distinct": len(counter), "repeated_share": sum(c > 1 for c in counter.values())
                            / max(len(counter), 1), "first_byte_agreement": agreeing / max(sum(counter.values()), 1),
                            "top": entries}
    return {"window_bits": b, "documents": len(texts), "bytes_per_document": doc_bytes, "positions": result}


def _common_prefix(texts):
    if not texts:
        return b""
    first, last = min(texts), max(texts)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


# ------------------------------------------------------------------------------------------------ the analysis

def run(tokenizers, specs, documents, words, word_source, chosen_word=None, n_contexts=3, models=None):
    """Every number of the analysis, as a JSON-able dict."""
    strings = [bytes_to_symbols(word.encode() + SENTENCE) for word in words]
    distances = {}
    for spec in specs:
        tokens = tokenizers.tokenize(spec[1], spec[2], spec[3], strings)
        d = pairwise_levenshtein(tokens)
        lengths = np.array([len(t) for t in tokens])
        distances[spec[0]] = {
            "mean": float(d.mean()), "quantiles": dict(zip(("5%", "25%", "50%", "75%", "95%"),
                                                           np.percentile(d, [5, 25, 50, 75, 95]).tolist())),
            "max": int(d.max()), "mean_tokens": float(lengths.mean()),
            "mean_relative": float(np.mean(d / np.maximum.outer(lengths, lengths)[np.triu_indices(len(lengths), 1)])),
            "histogram": np.bincount(d).tolist(),
        }
    if chosen_word is None:  # the longest word with enough contexts in the corpus
        chosen_word = next((w for w in sorted(words, key=lambda w: (-len(w), w))
                            if len(contexts_of(w, documents, n_contexts)) >= n_contexts), words[0])
    contexts = contexts_of(chosen_word, documents, n_contexts) or [(chosen_word.encode() + SENTENCE, 0)]
    views = {}
    for spec in specs:
        rows = [segmentation(tokenizers, spec, snippet, offset, len(chosen_word.encode()))
                for snippet, offset in contexts]
        if rows[0] is not None:
            views[spec[0]] = rows
    equalinfo_b = sorted({spec[2] for spec in specs if spec[1] == "equalinfo"})
    return {
        "sentence": SENTENCE.decode(), "words": words, "word_source": word_source, "pairs": len(words) * (len(words)
                                                                                                          - 1) // 2,
        "models": models or {}, "levenshtein": distances,
        "table7": {"word": chosen_word, "contexts": [_piece_text(s) for s, _ in contexts], "segmentations": views},
        "table8": [position_tokens(tokenizers, documents, b) for b in equalinfo_b[:1]],
    }


def summary_table(results):
    rows = [[name, f"{d['mean_tokens']:.1f}", f"{d['quantiles']['5%']:.0f}", f"{d['quantiles']['50%']:.0f}",
             f"{d['quantiles']['95%']:.0f}", f"{d['mean_relative']:.2f}"] for name, d in results["levenshtein"].items()]
    text = common.table(["method", "tokens/string", "Levenshtein 5%", "50%", "95%", "distance / length"], rows)
    t7 = results["table7"]
    lines = [text, "", f"Table 7 view: {t7['word']!r} in {len(t7['contexts'])} contexts"]
    for name, rows in t7["segmentations"].items():
        shown = [" ".join(f"[{p['text']}]" + ("" if name == "Bytes" else f"{p['tokens']}") for p in row)
                 for row in rows]
        lines.append(f"  {name}: " + "  /  ".join(shown))
    for t8 in results["table8"]:
        for position, info in t8["positions"].items():
            top = info["top"][0] if info["top"] else None
            if top:
                lines.append(f"Table 8 view (b={t8['window_bits']}, v=256): position {position}: token {top['token']}"
                             f" x{top['count']}, texts {[t for t, _ in top['texts']]}, common prefix "
                             f"{top['common_prefix']!r}; first-byte agreement {info['first_byte_agreement']:.2f}; "
                             f"{info['repeated_share']:.0%} of {info['distinct']} values repeat")
    return "\n".join(lines)


def draw(results):
    def figure(plt, path):
        names = list(results["levenshtein"])
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names)), 4.5))
        data = []
        for name in names:
            hist = np.array(results["levenshtein"][name]["histogram"])
            data.append(np.repeat(np.arange(len(hist)), hist))
        ax.violinplot(data, showmedians=True)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("Levenshtein distance between token sequences")
        ax.set_title(f"Token stability: {len(results['words'])} words + a fixed sentence (cf. the paper's Fig. 8)")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    return figure
