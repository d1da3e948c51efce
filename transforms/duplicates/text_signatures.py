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
"""
import hashlib
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.duplicates.candidates import tagged_keys
from transforms.hashing import column_hashes, folded_hashes

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
_S32 = np.uint64(32)
_DROPPED = r"[\p{P}\p{S}\p{Cf}]+"  # punctuation, symbols (emoji too), invisible format characters
_SPACES = r"[\s\p{Z}\p{Cc}]+"  # RE2's \s is ASCII only: add Unicode separators and control characters
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
    folded = pc.utf8_lower(pc.utf8_normalize(pc.fill_null(texts.cast(pa.string()), ""), "NFKD"))
    for character, fold in _COMMON_FOLDS:
        folded = pc.replace_substring(folded, character, fold)
    rare = np.flatnonzero(np.asarray(pc.match_substring_regex(folded, _RARE)))
    if rare.size:
        values = folded.to_numpy(zero_copy_only=False).astype(object)
        values[rare] = [unicodedata.normalize("NFKD", text.casefold()) for text in values[rare]]
        folded = pa.array(values, type=pa.string())
    spaced = pc.replace_substring_regex(pc.replace_substring_regex(folded, _DROPPED, ""), _SPACES, " ")
    return pc.utf8_trim(spaced, " ")


def normalized_text_keys(texts: pa.Array) -> np.ndarray:
    """(n,) string array -> (n,) uint64 key of each normalised text, tagged NORMALIZED_TAG: equal exactly
    when the normalised texts are (up to 56-bit hash collisions), never equal to a MinHash band key."""
    return tagged_keys(column_hashes(normalized_texts(texts)), NORMALIZED_TAG)


def shingle_hashes(texts: pa.Array) -> tuple:
    """(n,) string array -> (hashes (s,) uint64 of every text's shingles, text after text; (n,) int64
    number of shingles of each text, 0 for a text without words)."""
    normalized = normalized_texts(texts)
    split = pc.utf8_split_whitespace(normalized)  # '' splits into one empty word
    words = pc.list_flatten(split)
    hashes = column_hashes(words)[np.asarray(pc.greater(pc.utf8_length(words), 0))]
    counts = np.where(np.asarray(pc.equal(normalized, "")), 0, pc.list_value_length(split)).astype(np.int64)
    padded = np.concatenate([hashes, np.zeros(SHINGLE_WORDS - 1, dtype=np.uint64)])
    prefixes = [folded_hashes(np.full(hashes.size, _SHINGLE_SALT), [hashes])]  # prefixes[k]: k + 1 words from here
    for k in range(1, SHINGLE_WORDS):
        prefixes.append(folded_hashes(prefixes[-1], [padded[k:k + hashes.size]]))
    shingles = np.where(counts >= SHINGLE_WORDS, counts - SHINGLE_WORDS + 1, np.minimum(counts, 1))
    first_word = np.repeat(np.cumsum(counts) - counts, shingles)
    at = first_word + np.arange(shingles.sum()) - np.repeat(np.cumsum(shingles) - shingles, shingles)
    words_used = np.repeat(np.minimum(counts, SHINGLE_WORDS), shingles)  # 1..SHINGLE_WORDS
    return np.stack(prefixes)[words_used - 1, at], shingles


def minhash_signatures(texts: pa.Array) -> np.ndarray:
    """(n,) string array -> (n, PERMUTATIONS) uint32 MinHash signatures of the normalised texts' word
    shingles; a text without words gets EMPTY in every entry."""
    hashes, shingles = shingle_hashes(texts)
    signatures = np.full((len(shingles), PERMUTATIONS), EMPTY, dtype=np.uint32)
    has = shingles > 0
    starts = (np.cumsum(shingles) - shingles)[has]
    if not starts.size:
        return signatures
    for p in range(PERMUTATIONS):
        permuted = (folded_hashes(_SEEDS[p:p + 1], [hashes]) >> _S32).astype(np.uint32)  # (s,)
        signatures[has, p] = np.minimum.reduceat(permuted, starts)
    return signatures


def text_band_keys(signatures: np.ndarray) -> np.ndarray:
    """(n, PERMUTATIONS) signatures -> (n, BANDS) uint64: band b hashes entries b*r .. b*r + r - 1 and is
    tagged b, so keys of different bands never collide."""
    rows = np.asarray(signatures, dtype=np.uint64).reshape(len(signatures), BANDS, ROWS_PER_BAND)
    keys = np.empty((len(signatures), BANDS), dtype=np.uint64)
    for band in range(BANDS):
        words = [(rows[:, band, i] << _S32) | rows[:, band, i + 1] for i in range(0, ROWS_PER_BAND, 2)]
        salt = np.full(len(signatures), _BAND_SALT ^ np.uint64(band), dtype=np.uint64)
        keys[:, band] = tagged_keys(folded_hashes(salt, words), band)
    return keys


def text_similarity(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Signatures (m, PERMUTATIONS) and (m, PERMUTATIONS) -> (m,) float64 fraction of equal entries: the
    estimated Jaccard similarity of their shingle sets."""
    return np.mean(np.asarray(sig_a) == np.asarray(sig_b), axis=1, dtype=np.float64)
