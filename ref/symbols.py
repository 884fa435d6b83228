"""M1's alphabet and the conversions between documents and symbols.

Ids 0-255 are the bytes of the UTF-8 (or raw) text, 256 is EOS (end of document), 257 is BOS. BOS is never coded: it
is only ever M1's first *input*, at the start of every sequence and of every Equal-Info window, so M1 embeds 258 ids
and predicts 257 (docs/design.md, "Symbols").
"""
import numpy as np

EOS = 256
BOS = 257
N_SYMBOLS = 257  # what the coder codes: 256 bytes + EOS
N_INPUTS = 258  # what M1 reads: the symbols + BOS


def check_symbols(symbols):
    """int64 copy of a 1-D symbol array, or a ValueError naming the first symbol outside 0..256."""
    symbols = np.asarray(symbols)
    if symbols.ndim != 1 or (symbols.size and not np.issubdtype(symbols.dtype, np.integer)):
        raise ValueError(f"symbols must be a 1-D integer array, got {symbols.dtype} {symbols.shape}")
    symbols = symbols.astype(np.int64)
    bad = (symbols < 0) | (symbols >= N_SYMBOLS)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(f"symbol {int(symbols[index])} at position {index} is outside 0..{N_SYMBOLS - 1}")
    return symbols


def text_to_bytes(text):
    """UTF-8 bytes of a str (strict: lone surrogates raise), or the bytes themselves if given bytes."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    if not isinstance(text, str):
        raise TypeError(f"expected str or bytes, got {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"text is not encodable as UTF-8 (position {error.start}): {error.reason}") from None


def bytes_to_symbols(data):
    """int64 symbols [n] of a byte string, no EOS added."""
    return np.frombuffer(bytes(data), dtype=np.uint8).astype(np.int64)


def symbols_to_bytes(symbols):
    """Byte string of symbols that must all be bytes (0-255); EOS or anything else raises."""
    symbols = np.asarray(symbols)
    bad = (symbols < 0) | (symbols > 255)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(f"symbol {int(symbols[index])} at position {index} is not a byte (0-255)")
    return symbols.astype(np.uint8).tobytes()


def documents_to_symbols(documents):
    """int64 symbols of documents (str or bytes), each followed by EOS, concatenated."""
    parts = []
    for document in documents:
        parts.append(bytes_to_symbols(text_to_bytes(document)))
        parts.append(np.array([EOS], dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def symbols_to_documents(symbols):
    """Split symbols at EOS into byte strings. A trailing piece without EOS is kept as the last document."""
    symbols = np.asarray(symbols, dtype=np.int64)
    documents, start = [], 0
    for end in np.flatnonzero(symbols == EOS):
        documents.append(symbols_to_bytes(symbols[start:end]))
        start = end + 1
    if start < len(symbols):
        documents.append(symbols_to_bytes(symbols[start:]))
    return documents
