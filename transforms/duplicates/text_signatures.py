"""Texts -> what finds their near duplicates: a normalised form, a MinHash signature and its LSH band keys.

In: a pyarrow string array of n texts. Out: normalised texts (n,); MinHash signatures (n, PERMUTATIONS)
uint32; band keys (n, BANDS) uint64; the key of each normalised text (n,) uint64. All vectorized with
pyarrow.compute and numpy; every constant comes from fixed bytes, so a text has the same signature and
keys on every run and machine.

Normalisation: Unicode compatibility normalisation (fullwidth letters, ligatures, compatibility forms),
then full case folding (utf8_lower, then the few characters whose folding differs from their lower case:
ß -> ss, ς -> σ vectorized, the rarer ones by str.casefold on the texts holding them), then punctuation,
symbols and invisible format characters removed (`What's` = `Whats`), whitespace runs made one space,
ends stripped. The form is NFKD, which makes exactly the texts equal that NFKC does: pyarrow 25's
utf8_normalize returns NFKD even when asked for NFKC (apache/arrow#51225, fixed after 25), so asking for
NFKD gives the same keys before and after that fix.

MinHash: the shingles of a text are its runs of SHINGLE_WORDS consecutive words (a shorter text is one
shingle of all its words), each hashed once from its words' hashes; permutation p maps a shingle hash x to
the top 32 bits of a seeded 64-bit mix (transforms/hashing.py's folded_hashes of x with seed p), and the
signature keeps each permutation's minimum. Two texts agree on an entry with probability their shingle
sets' Jaccard similarity, which text_similarity estimates (standard error sqrt(J (1 - J) / 64), 0.04 at
J = 0.9: a pair at true Jaccard 0.944 is estimated below 0.9 about 1 time in 20).

LSH: BANDS bands of ROWS_PER_BAND rows; a pair of similarity s shares at least one band key with
probability 1 - (1 - s^r)^b. With b = r = 8: 0.989 at s = 0.9, 0.77 at 0.8, 0.38 at 0.7, 0.03 at 0.5, so
nearly every pair at the default threshold 0.9 becomes a candidate while dissimilar texts rarely do
(16 x 4 would reach 1.0 at 0.9 but make 64 % of the pairs at 0.5 candidates; 4 x 16 only 0.60 at 0.9).
A one-word change inside a text of w words changes up to 3 of its w - 2 shingles: Jaccard (w - 5) / (w + 1),
so it stays >= 0.9 only from w = 59 words; a word appended at the end: (w - 2) / (w - 1), from w = 11.

Cost (the same values, computed cheaply): ASCII texts skip NFKD and Unicode case folding, which would leave
them as ascii_lower does; each distinct word is hashed once; shingles are permuted SLICE_TEXTS texts and
MINHASH_CHUNK shingles at a time, in place in buffers that stay in the cache, the permutations' shared first
step done apart (_mixed). 500,000 texts of 5 to 25 words (bench/make_csv.py's labeled rows) take about
2.3 s on one core, 0.8 s of it for the words, against 9.6 s before.
"""
import hashlib
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.duplicates.candidates import tagged_keys
from transforms.hashing import _M1, _M2, _M3, category_hashes, column_hashes, folded_hashes  # _M*: for _mixed

PERMUTATIONS = 64
BANDS = 8
ROWS_PER_BAND = 8
SHINGLE_WORDS = 3
NORMALIZED_TAG = BANDS  # the tag of normalized_text_keys: a band key of its own, after the MinHash bands
EMPTY = np.uint32(0xFFFFFFFF)  # every entry of the signature of a text with no words

_SEEDS = np.frombuffer(hashlib.shake_128(b"finetune-etl minhash").digest(8 * PERMUTATIONS), dtype="<u8")
_SEEDS = _SEEDS.astype(np.uint64)  # (PERMUTATIONS,) native uint64
_SHINGLE_SALT = np.uint64(0x5A1F_9E37_0B0E_D0C5)
_BAND_SALT = np.uint64(0xBA4D_5EED_0F1E_2A7B)
_S29, _S31, _S32 = np.uint64(29), np.uint64(31), np.uint64(32)
_SEED_MIXES = _SEEDS * _M1  # folded_hashes' first step for each seed
_SEED_MIXES_SHIFTED = _SEED_MIXES ^ (_SEED_MIXES >> _S31)  # and the seeds' part of the avalanche's first step
SLICE_TEXTS = 4096  # texts signed at once: their shingles' arrays take about 0.5 MiB each
MINHASH_CHUNK = 4096  # shingles permuted at once: 2 x 2 MiB of buffers
_DROPPED = r"[\p{P}\p{S}\p{Cf}]+"  # punctuation, symbols (emoji too), invisible format characters
_SPACES = r"[\s\p{Z}\p{Cc}]"  # RE2's \s is ASCII only: add Unicode separators and control characters
# A run of _SPACES becomes one space. Runs that are one space already are left alone (most of a text's
# spaces; replacing each costs 3x more): a run of two or more, or one separator or control character
# other than the space (RE2's \s other than the space are all \p{Cc}).
_SPACE_RUNS = _SPACES + r"{2,}|[^ \PZ]|\p{Cc}"
_COMMON_FOLDS = (("ß", "ss"), ("ς", "σ"))  # the frequent foldings that differ from lower case, vectorized
# The other characters (all in the BMP) that lower case leaves but case folding changes after NFKD:
# Cherokee small letters, the Greek ypogegrammeni, a few more.
_RARE_FOLDS = "".join(c for c in map(chr, range(0x10000)) if c not in "ßς" and c.lower() == c and not
                      0xD800 <= ord(c) < 0xE000 and
                      unicodedata.normalize("NFKD", c.casefold()) != unicodedata.normalize("NFKD", c))
_RARE = "[" + "".join(f"\\x{{{ord(c):04x}}}" for c in _RARE_FOLDS) + "]"


def normalized_texts(texts: pa.Array) -> pa.Array:
    """(n,) string array -> (n,) string array: NFKD, case-folded, without punctuation or symbols, single
    spaces between words, no space at the ends; null -> ''."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = pc.fill_null(texts.cast(pa.string()), "")
    folded = pc.ascii_lower(texts)  # all that NFKD and case folding do to an ASCII text
    other = np.asarray(pc.invert(pc.string_is_ascii(texts)))
    if other.any():
        folded = pc.replace_with_mask(folded, pa.array(other), _unicode_folded(texts.filter(pa.array(other))))
    spaced = pc.replace_substring_regex(pc.replace_substring_regex(folded, _DROPPED, ""), _SPACE_RUNS, " ")
    return pc.utf8_trim(spaced, " ")


def _unicode_folded(texts: pa.Array) -> pa.Array:
    """(n,) string array -> (n,) NFKD, case-folded (the vectorized common folds, the rare ones by str.casefold)."""
    folded = pc.utf8_lower(pc.utf8_normalize(texts, "NFKD"))
    for character, fold in _COMMON_FOLDS:
        folded = pc.replace_substring(folded, character, fold)
    rare = np.flatnonzero(np.asarray(pc.match_substring_regex(folded, _RARE)))
    if rare.size:
        values = folded.to_numpy(zero_copy_only=False).astype(object)
        values[rare] = [unicodedata.normalize("NFKD", text.casefold()) for text in values[rare]]
        folded = pa.array(values, type=pa.string())
    return folded


def normalized_text_keys(texts: pa.Array) -> np.ndarray:
    """(n,) string array -> (n,) uint64 key of each normalised text, tagged NORMALIZED_TAG: equal exactly
    when the normalised texts are (up to 56-bit hash collisions), never equal to a MinHash band key."""
    return tagged_keys(column_hashes(normalized_texts(texts)), NORMALIZED_TAG)


def word_hashes(texts: pa.Array) -> tuple:
    """(n,) string array -> (hashes (w,) uint64 of every text's normalised words, text after text; (n,) int64
    number of words of each text)."""
    normalized = normalized_texts(texts)
    split = pc.split_pattern(normalized, " ")  # its words are between single spaces; '' is one empty word
    hashes = category_hashes(pc.list_flatten(split))  # each distinct word hashed once
    counts = np.asarray(pc.list_value_length(split)).astype(np.int64)
    empty = np.flatnonzero(np.asarray(pc.equal(normalized, "")))
    if empty.size:
        offsets = np.asarray(split.offsets)
        kept = np.ones(hashes.size, dtype=bool)
        kept[offsets[empty] - offsets[0]] = False
        hashes = hashes[kept]
        counts[empty] = 0
    return hashes, counts


def shingle_hashes(texts: pa.Array) -> tuple:
    """(n,) string array -> (hashes (s,) uint64 of every text's shingles, text after text; (n,) int64
    number of shingles of each text, 0 for a text without words)."""
    return _shingled(*word_hashes(texts))


def _shingled(words: np.ndarray, counts: np.ndarray) -> tuple:
    """word_hashes (words (w,), counts (n,)) -> shingle_hashes. A text of c >= SHINGLE_WORDS words has a
    shingle at each of its first c - SHINGLE_WORDS + 1 words, a shorter one a single shingle of all its words,
    at its first word."""
    padded = np.concatenate([words, np.zeros(SHINGLE_WORDS - 1, dtype=np.uint64)])
    prefixes = [folded_hashes(np.full(words.size, _SHINGLE_SALT), [words])]  # prefixes[k]: k + 1 words from here
    for k in range(1, SHINGLE_WORDS):
        prefixes.append(folded_hashes(prefixes[-1], [padded[k:k + words.size]]))
    firsts, ends = np.cumsum(counts) - counts, np.cumsum(counts)
    shingled, kept = prefixes[-1], np.ones(words.size, dtype=bool)
    for tail in range(1, SHINGLE_WORDS):
        kept[ends[counts >= SHINGLE_WORDS] - tail] = False
        kept[firsts[(counts > tail) & (counts < SHINGLE_WORDS)] + tail] = False
        short = firsts[counts == tail]
        shingled[short] = prefixes[tail - 1][short]
    shingles = np.where(counts >= SHINGLE_WORDS, counts - SHINGLE_WORDS + 1, np.minimum(counts, 1))
    return shingled[kept], shingles


def minhash_signatures(texts: pa.Array) -> np.ndarray:
    """(n,) string array -> (n, PERMUTATIONS) uint32 MinHash signatures of the normalised texts' word
    shingles; a text without words gets EMPTY in every entry. The words of all texts are found at once,
    the rest is done SLICE_TEXTS texts at a time, so that the temporaries stay small enough for the cache."""
    words, counts = word_hashes(texts)
    firsts = np.r_[0, np.cumsum(counts)]
    slices = [_minhash_slice(*_shingled(words[firsts[at]:firsts[min(at + SLICE_TEXTS, counts.size)]],
                                        counts[at:at + SLICE_TEXTS]))
              for at in range(0, counts.size, SLICE_TEXTS)]
    return np.concatenate([np.zeros((0, PERMUTATIONS), dtype=np.uint32), *slices])


def _minhash_slice(hashes: np.ndarray, shingles: np.ndarray) -> np.ndarray:
    """shingle_hashes of a few texts -> their minhash_signatures, the shingles permuted MINHASH_CHUNK at a time."""
    signatures = np.full((len(shingles), PERMUTATIONS), EMPTY, dtype=np.uint32)
    ends = np.cumsum(shingles)
    starts = ends - shingles
    mixed = np.empty((PERMUTATIONS, MINHASH_CHUNK), dtype=np.uint64)  # a row per permutation, for reduceat
    scratch = np.empty_like(mixed)
    for low in range(0, hashes.size, MINHASH_CHUNK):
        high = min(low + MINHASH_CHUNK, hashes.size)
        owners = np.arange(np.searchsorted(ends, low, "right"), np.searchsorted(ends, high - 1, "right") + 1)
        owners = owners[shingles[owners] > 0]  # the texts with shingles in [low, high), the first maybe begun before
        values = _mixed(hashes[low:high], mixed[:, :high - low], scratch[:, :high - low])
        least = np.minimum.reduceat(values, np.maximum(starts[owners], low) - low, axis=1)  # (PERMUTATIONS, owners)
        signatures[owners] = np.minimum(signatures[owners], least.T >> _S32)  # min(h) >> 32 = min(h >> 32)
    return signatures


def _mixed(hashes: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """(c,) uint64 shingle hashes -> out (PERMUTATIONS, c) uint64: row p holds each hash mixed with seed p,
    whose top 32 bits are permutation p of the hash, those of folded_hashes(seed p, [hash]); computed in
    place, without the avalanche's last step (h ^ h >> 32 leaves the top bits as they are). Its first step,
    h = x ^ seed mix, h ^= h >> 31, is done apart for the hashes and the seeds: a shift of an exclusive or
    is the exclusive or of the shifts."""
    np.bitwise_xor(_SEED_MIXES_SHIFTED[:, None], hashes ^ (hashes >> _S31), out=out)
    out *= _M2
    np.right_shift(out, _S29, out=scratch)
    out ^= scratch
    out *= _M3
    return out


def text_band_keys(signatures: np.ndarray) -> np.ndarray:
    """(n, PERMUTATIONS) signatures -> (n, BANDS) uint64: band b hashes entries b*r .. b*r + r - 1 and is
    tagged b, so keys of different bands never collide. SLICE_TEXTS signatures at a time."""
    slices = [_band_keys_slice(signatures[at:at + SLICE_TEXTS]) for at in range(0, len(signatures), SLICE_TEXTS)]
    return np.concatenate([np.zeros((0, BANDS), dtype=np.uint64), *slices])


def _band_keys_slice(signatures: np.ndarray) -> np.ndarray:
    """text_band_keys of a few signatures: each band's entries (2i, 2i + 1) as one word, entry 2i high,
    folded in order into the band's salt."""
    pairs = np.ascontiguousarray(signatures, dtype=">u4").view(">u8").astype(np.uint64)
    words = pairs.reshape(len(signatures), BANDS, ROWS_PER_BAND // 2)
    bands = np.arange(BANDS, dtype=np.uint64)
    keys = folded_hashes(np.broadcast_to(_BAND_SALT ^ bands, words.shape[:2]), list(np.moveaxis(words, 2, 0)))
    return np.stack([tagged_keys(keys[:, band], band) for band in range(BANDS)], axis=1)


def text_similarity(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Signatures (m, PERMUTATIONS) and (m, PERMUTATIONS) -> (m,) float64 fraction of equal entries: the
    estimated Jaccard similarity of their shingle sets."""
    return np.mean(np.asarray(sig_a) == np.asarray(sig_b), axis=1, dtype=np.float64)
