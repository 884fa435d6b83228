"""Readable NumPy ground truth of "Training LLMs over Neurally Compressed Text" (Lester et al., 2024).

Every other backend (fast/cpu, fast/gpu) is tested against these modules, and has the same public functions. They
compute from their arguments alone (no files; a coder's optional progress(n) callback is the only thing they call
back); they import NumPy, a few standard modules (math, hashlib, zlib, ...) and each other.
Read them in this order; each line names the paper's part it implements and the result it serves
(§ = section of the paper, docs/paper.md gives the facts).

Text to bits (§2.4, §3.3; Figure 1's compression step)
 1. symbols.py     M1's alphabet: bytes 0-255, EOS 256, BOS 257 (an input only); documents <-> symbols
 2. arithmetic.py  quantize (probabilities -> integer CDF, min probability 2^-14) and the integer coder
                   Encoder/Decoder with their shared interval update (§2.4; the AC overhead in Table 3)
 3. models.py      the protocol a coder reads probabilities through; UnigramModel (StaticAC's, §3.6) and
                   MarkovModel (an order-k stand-in for M1 that makes the stack testable without training)
 4. cursor.py      CdfCursor: a model as one quantized CDF per coding step (caches that never change a CDF)
 5. ac.py          plain arithmetic coding of a whole example: the paper's AC[v] and StaticAC (Tables 12, 15)
 6. equalinfo.py   Equal-Info windows, EqualInfoAC[b, v] (§3.3, Figure 2; App. D.5): greedy windows plus a
                   delimiting cell, so every window decodes alone (the paper's rule fails on 0.6%)
 7. baselines.py   the non-neural baselines as bitstreams: raw bytes and GZip (§3.6; Tables 12, 15)
 8. tokens.py      cutting a bitstream into N-bit tokens, v = 2^N (§3.4)
M1 and M2, the language models (§3.2, §3.5; Table 4)
 9. transformer.py the T5-style decoder-only Transformer, forward and hand-written backward, z-loss
10. optim.py       Adafactor as T5X runs it (the paper's optimizer) and AdamW for short runs
11. exact_m1.py    rule 1: M1's forward pass with every rounding specified, so encoder and decoder get the same
                   probabilities on any machine (the non-determinism of §3.7, removed by construction)
12. integer_m1.py  rule 2: the same pass with its matrix products on int16 operands, exact in any summation
                   order, so BLAS and cuBLAS may compute them (M1 at matrix-product speed, same bits everywhere)
13. int8_m1.py     rule 3: its products on int8-valued operands (rows split in two halves), exact in any float32
                   GEMM, tensor cores included
    int8_rows_m1.py rule 4: int8 rows too (one GEMM per product), keys and values in bfloat16
14. exact_rules.py the rules by version number, the number every M1 file and dataset carries
15. m1.py          TransformerModel: M1 behind the model protocol, its rows by its rule (Figure 1's M1)
16. stored_models.py  a model rebuilt from its kind and stored arrays (what files and model files hold)
Scoring (§3.8, App. D.1)
17. metrics.py     bits/byte, token and bit compression ratios, FLOPs/byte (Tables 3, 12, 15; Figure 3),
                   and how far bits are from uniform (KL, §6.3)
18. fingerprint.py the SHA-256 of a model's arrays that files and datasets carry to name their model
"""
