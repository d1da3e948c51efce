"""Generate realistic, deterministic training CSVs for benchmarking the ETL.

In: a layout, a row count and a seed.  Out: one headerless CSV file (excel dialect, ``\\n`` line
ends, UTF-8/ASCII) whose bytes depend only on (layout, rows, seed).

Layouts (one row per line):
  pairs    query,document     -- each query repeats on 1..20 rows (Zipf-like), documents ~distinct
  labeled  text,label         -- ~3000 labels, Zipf-like frequencies
  scores   text,text,score    -- score in [0, 1] printed with two decimals

Text fields are 5..25 pseudo-English words (Zipf word frequencies over a ~5000-word vocabulary),
sentence-capitalised, ending in punctuation.  About 10% of text fields contain a comma and are
therefore quoted; some quoted fields also contain a doubled quote (``""word""``).

Everything is vectorised: a chunk of rows is built as an int32 array of vocabulary tokens, then
turned into bytes by one numpy gather over a table of padded tokens.  ~1 GB takes seconds.

    python -m bench.make_csv --layout pairs --rows 100000 --out /tmp/pairs.csv [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

LAYOUTS = ("pairs", "labeled", "scores")
CHUNK_ROWS = 50_000
QUOTED_FRAC = 0.10  # fraction of text fields that contain a comma (and so are quoted)
N_WORDS, N_LABELS, VOCAB_SEED = 5000, 3000, 12345
TOKEN_WIDTH = 16  # longest token in bytes (a 12-letter word with ", ", a ""quoted"" word, a label)
_SEPS = (" ", ", ", ".", "?", "!")  # what follows a word: SP, COMMA, then sentence ends DOT, QMARK, BANG
SP, COMMA, DOT, QMARK, BANG = range(len(_SEPS))
_FUNCTION_WORDS = ("the of and to a in is that for it as was with be by on not he this are or his "
                   "from at which but have an they you were her she there one all we").split()


def _gather(src: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenate the slices src[starts[k] : starts[k] + lens[k]] for all k, vectorised."""
    lens = lens.astype(np.int64, copy=False)
    ends = np.cumsum(lens)
    idx = np.repeat(starts.astype(np.int64, copy=False) - (ends - lens), lens)
    idx += np.arange(ends[-1] if len(ends) else 0, dtype=np.int64)
    return src[idx]


class _Table:
    """The token table: every token is a byte string; tokens are ids into one blob."""

    def __init__(self) -> None:
        rng = np.random.default_rng(VOCAB_SEED)
        onsets = "b c d f g h j k l m n p r s t v w z br ch cl dr fl gr pl pr sh st th tr".split()
        vowels = "a e i o u ai ea ee ou io".split()
        codas = ["", "", "", "n", "r", "s", "t", "l", "nd", "st", "ng", "m", "ck"]
        words, seen = list(_FUNCTION_WORDS), set(_FUNCTION_WORDS)
        while len(words) < N_WORDS:
            n_syl = rng.choice([1, 2, 2, 3, 3, 4])
            w = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(n_syl))
            if 2 <= len(w) <= 12 and w not in seen:
                seen.add(w)
                words.append(w)
        labels = set()
        while len(labels) < N_LABELS:
            a, b = rng.integers(len(_FUNCTION_WORDS), N_WORDS, 2)
            if len(words[a]) + len(words[b]) < TOKEN_WIDTH:
                labels.add(f"{words[a]}-{words[b]}")
        # A word token is (form, word, separator after it): form 0 plain, 1 Capitalised, 2 ""quoted"".
        self.V = N_WORDS
        forms = [words, [w.capitalize() for w in words], [f'""{w}""' if len(w) <= 8 else w for w in words]]
        toks = [f"{w}{sep}".encode() for ws in forms for w in ws for sep in _SEPS]
        self.short = np.array([len(w) <= 8 for w in words])   # words that have a ""quoted"" form
        self.QUOTE, self.DELIM, self.NL = range(len(toks), len(toks) + 3)
        toks += [b'"', b",", b"\n"]
        self.SCORE0 = len(toks)
        toks += [f"{i / 100:.2f}".encode() for i in range(101)]  # "0.00" .. "1.00"
        self.LABEL0 = len(toks)
        toks += [s.encode() for s in sorted(labels)]
        # Each token NUL-padded to TOKEN_WIDTH bytes: tokens -> bytes is one row gather + drop NULs.
        assert max(map(len, toks)) <= TOKEN_WIDTH
        self.padded = np.frombuffer(b"".join(t.ljust(TOKEN_WIDTH, b"\0") for t in toks), dtype=np.uint8)
        self.padded = self.padded.reshape(len(toks), TOKEN_WIDTH)
        # Zipf-Mandelbrot word frequencies, sampled through a quantised inverse-CDF lookup table.
        self.word_lut = _zipf_lut(N_WORDS, a=1.07, shift=2.7)
        self.label_lut = _zipf_lut(N_LABELS, a=0.9, shift=10.0)

    def to_bytes(self, tokens: np.ndarray) -> np.ndarray:
        out = np.take(self.padded, tokens, axis=0).ravel()
        return out[out != 0]


def _zipf_lut(n: int, a: float, shift: float, bits: int = 20) -> np.ndarray:
    p = 1.0 / (np.arange(n) + shift) ** a
    cdf = np.cumsum(p / p.sum())
    return np.minimum(np.searchsorted(cdf, (np.arange(2**bits) + 0.5) / 2**bits), n - 1).astype(np.int32)


_TABLE: _Table | None = None


def _table() -> _Table:
    global _TABLE
    if _TABLE is None:
        _TABLE = _Table()
    return _TABLE


def _sentences(rng: np.random.Generator, t: _Table, m: int, lo: int, hi: int):
    """m CSV-encoded text fields of lo..hi words -> (tokens, starts, lens) with one field per entry."""
    n = rng.integers(lo, hi + 1, m)
    quoted = rng.random(m) < QUOTED_FRAC
    lens = n + 2 * quoted                          # one token per word(+separator), plus two quotes
    starts = np.cumsum(lens) - lens
    first = np.cumsum(n) - n
    n_words = int(n.sum())
    words = t.word_lut[rng.integers(0, len(t.word_lut), n_words, dtype=np.int32)]
    r = rng.random(n_words, dtype=np.float32)
    form = (r < 0.03).astype(np.int32)                               # some Names mid-sentence
    form[np.repeat(quoted, n) & (r > 0.985) & t.short[words]] = 2   # ""quoted"" words
    form[first] = 1                                                 # sentence case
    sep = np.full(n_words, SP, dtype=np.int32)
    sep[first + n - 1] = rng.choice([DOT, QMARK, BANG], m, p=[0.85, 0.1, 0.05])
    qf = np.flatnonzero(quoted)
    sep[first[qf] + rng.integers(0, n[qf] - 1)] = COMMA           # one comma, never after the last word
    tok = np.empty(int(lens.sum()), dtype=np.int32)
    pos = np.repeat(starts + quoted - first, n) + np.arange(n_words)  # skip the opening quote if any
    tok[pos] = (form * t.V + words) * len(_SEPS) + sep
    tok[starts[qf]] = t.QUOTE
    tok[starts[qf] + lens[qf] - 1] = t.QUOTE
    return tok, starts, lens


def _rows(t: _Table, cols) -> np.ndarray:
    """Columns [(tokens, starts, lens) per row] -> token stream of rows joined by ',' and '\\n'."""
    srcs, seg_s, seg_l, base = [], [], [], 0
    for src, s, ln in cols:
        srcs.append(src)
        seg_s.append(s + base)
        seg_l.append(ln)
        base += len(src)
    srcs.append(np.array([t.DELIM, t.NL], dtype=np.int32))
    n_rows, n_cols = len(seg_s[0]), len(cols)
    S = np.empty((n_rows, 2 * n_cols), dtype=np.int64)
    L = np.ones((n_rows, 2 * n_cols), dtype=np.int64)
    S[:, 0::2], L[:, 0::2] = np.stack(seg_s, 1), np.stack(seg_l, 1)
    S[:, 1::2], S[:, -1] = base, base + 1
    return _gather(np.concatenate(srcs), S.ravel(), L.ravel())


def _single(tokens: np.ndarray):
    """One-token-per-row column (labels, scores)."""
    return tokens.astype(np.int32), np.arange(len(tokens)), np.ones(len(tokens), dtype=np.int64)


def make_chunk(rng: np.random.Generator, layout: str, rows: int) -> bytes:
    """`rows` CSV rows of `layout` as bytes."""
    t = _table()
    if layout == "pairs":
        # Query group sizes 1..20 with P(k) ~ 1/k; rows of a query are scattered over the chunk.
        sizes = 1 + _zipf_lut(20, a=1.0, shift=1.0, bits=12)[rng.integers(0, 2**12, rows)]
        n_q = int(np.searchsorted(np.cumsum(sizes), rows)) + 1
        q_of_row = rng.permutation(np.repeat(np.arange(n_q), sizes[:n_q])[:rows])
        q_tok, q_s, q_l = _sentences(rng, t, n_q, 5, 12)
        d_tok, d_s, d_l = _sentences(rng, t, rows, 8, 25)
        d_idx = np.arange(rows)
        dup = rng.random(rows) < 0.02                      # ~2% of documents reappear elsewhere
        d_idx[dup] = rng.integers(0, rows, int(dup.sum()))
        cols = [(q_tok, q_s[q_of_row], q_l[q_of_row]), (d_tok, d_s[d_idx], d_l[d_idx])]
    elif layout == "labeled":
        cols = [_sentences(rng, t, rows, 5, 25),
                _single(t.LABEL0 + t.label_lut[rng.integers(0, len(t.label_lut), rows)])]
    elif layout == "scores":
        score = np.rint(rng.beta(2.0, 2.0, rows) * 100).astype(np.int64)
        cols = [_sentences(rng, t, rows, 5, 25), _sentences(rng, t, rows, 5, 25), _single(t.SCORE0 + score)]
    else:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    return t.to_bytes(_rows(t, cols)).tobytes()


def write_csv(path: str, layout: str, rows: int, seed: int = 0) -> int:
    """Write `rows` rows of `layout` to `path`; returns the number of bytes written."""
    rng = np.random.default_rng(seed)
    written = 0
    with open(path, "wb", buffering=16 << 20) as f:
        for start in range(0, rows, CHUNK_ROWS):
            data = make_chunk(rng, layout, min(CHUNK_ROWS, rows - start))
            f.write(data)
            written += len(data)
    return written


def bytes_per_row(layout: str, seed: int = 0, sample: int = CHUNK_ROWS) -> float:
    """Average CSV bytes per row of `layout` (from one sample chunk), to size a file in MB."""
    return len(make_chunk(np.random.default_rng(seed), layout, sample)) / sample


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layout", choices=LAYOUTS, required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    n = write_csv(args.out, args.layout, args.rows, args.seed)
    dt = time.perf_counter() - t0
    print(f"wrote {args.rows} rows, {n / 1e6:.1f} MB to {args.out} in {dt:.2f} s ({n / 1e6 / dt:.0f} MB/s)")


def cached_csv(workdir: str, prefix: str, layout: str, rows: int) -> str:
    """WORKDIR/<prefix>-<layout>-<rows>.csv of write_csv(seed=0), generated once (written aside, then moved)."""
    path = os.path.join(workdir, f"{prefix}-{layout}-{rows}.csv")
    if not os.path.exists(path):
        write_csv(path + ".tmp", layout, rows, seed=0)
        os.replace(path + ".tmp", path)
    return path


if __name__ == "__main__":
    main()

