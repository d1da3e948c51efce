"""Texts -> what finds their near duplicates: a normalised form, a MinHash signature and its LSH band keys.

In: a pyarrow string array of n texts. Out: normalised texts (n,); MinHash signatures (n, PERMUTATIONS)
uint32; band keys (n, BANDS) uint64; the key of each normalised text (n,) uint64; minhash_keys, what the
near-duplicate stage keeps: the band keys and each signature entry's low byte. All vectorized with
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
shingle of all its words), each hashed once from its words' hashes and folded to an odd 32-bit word w;
permutation p maps w to w times the odd multiplier p modulo 2^32 (a bijection of the odd numbers: the
words are already well mixed hashes, so one multiply per permutation gives orders as good as independent
ones), and the signature keeps each permutation's minimum. Two texts agree on an entry with
probability their shingle sets' Jaccard similarity, which text_similarity estimates (standard error
sqrt(J (1 - J) / 64), 0.04 at J = 0.9: a pair at true Jaccard 0.944 is estimated below 0.9 about 1 time in
20; tests/transforms/duplicates/test_text_signatures.py checks the estimate's bias and spread).

LSH: BANDS bands of ROWS_PER_BAND rows; a pair of similarity s shares at least one band key with
probability 1 - (1 - s^r)^b. With b = r = 8: 0.989 at s = 0.9, 0.77 at 0.8, 0.38 at 0.7, 0.03 at 0.5, so
nearly every pair at the default threshold 0.9 becomes a candidate while dissimilar texts rarely do
(16 x 4 would reach 1.0 at 0.9 but make 64 % of the pairs at 0.5 candidates; 4 x 16 only 0.60 at 0.9).
A one-word change inside a text of w words changes up to 3 of its w - 2 shingles: Jaccard (w - 5) / (w + 1),
so it stays >= 0.9 only from w = 59 words; a word appended at the end: (w - 2) / (w - 1), from w = 11.

Cost (the same values, computed cheaply): ASCII texts skip NFKD and Unicode case folding, which would leave
them as ascii_lower does; the words are cut out of the normalised texts' own bytes at their spaces, and
each distinct word is hashed once; a permutation is one uint32 multiply (twice as many to a vector
instruction as uint64); texts of about the same shingle count are permuted together, their j-th shingles
as one (PERMUTATIONS, texts) block folded into a running minimum (_signatures), so no step reduces text by
text; band keys fold a band's words by multiply and exclusive-or with one avalanche at the end. The
stage's minhash_keys turns each block into keys and low bytes at once: the (n, PERMUTATIONS) uint32
signatures are never held.
"""
import hashlib
import unicodedata
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.duplicates.candidates import tagged_keys
from transforms.hashing import category_hashes, column_hashes, folded_hashes

PERMUTATIONS = 64
BANDS = 8
ROWS_PER_BAND = 8
SHINGLE_WORDS = 3
NORMALIZED_TAG = BANDS  # the tag of normalized_text_keys: a band key of its own, after the MinHash bands
EMPTY = np.uint32(0xFFFFFFFF)  # every entry of the signature of a text with no words

_MULTIPLIERS = np.frombuffer(hashlib.shake_128(b"finetune-etl minhash32").digest(4 * PERMUTATIONS), dtype="<u4")
_MULTIPLIERS = (_MULTIPLIERS.astype(np.uint32) | np.uint32(1))[:, None]  # (PERMUTATIONS, 1) odd, native uint32
_SHINGLE_SALT = np.uint64(0x5A1F_9E37_0B0E_D0C5)
_BAND_SALTS = np.uint64(0xBA4D_5EED_0F1E_2A7B) ^ np.arange(BANDS, dtype=np.uint64)  # (BANDS,)
_BAND_MULTIPLIER = np.uint64(0x9E37_79B9_7F4A_7C15)  # odd: multiplying by it is a bijection of uint64
_S32 = np.uint64(32)
SLICE_TEXTS = 4096  # texts shingled, and signatures turned into band keys, at once
BLOCK_TEXTS = 4096  # texts permuted at once: (PERMUTATIONS, BLOCK_TEXTS) uint32 buffers of 1 MiB
MINHASH_CHUNK = 4096  # shingles of a long text permuted at once
EXACT_LENGTHS = 32  # texts of up to this many shingles are grouped by their exact count
LONG_TEXT = 256  # texts of more shingles are signed one by one
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
    return pc.utf8_trim(_spaced_texts(texts), " ")


def _spaced_texts(texts: pa.Array) -> pa.Array:
    """(n,) string array -> (n,) normalized_texts, except that a text may still start or end with one space."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = pc.fill_null(texts.cast(pa.string()), "")
    folded = pc.ascii_lower(texts)  # all that NFKD and case folding do to an ASCII text
    other = np.asarray(pc.invert(pc.string_is_ascii(texts)))
    if other.any():
        folded = pc.replace_with_mask(folded, pa.array(other), _unicode_folded(texts.filter(pa.array(other))))
    return pc.replace_substring_regex(pc.replace_substring_regex(folded, _DROPPED, ""), _SPACE_RUNS, " ")


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
    number of words of each text).

    Each word is hashed with the space that follows it: a space is put after every text, so that every
    word ends at a space, and the words are cut out of the texts' own bytes (no copy) where the spaces are.
    A lone space is no word (one starts or ends some texts: _spaced_texts)."""
    ended = pc.binary_join_element_wise(_spaced_texts(texts), " ", "")
    _, offsets_buffer, data_buffer = ended.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32, count=len(ended) + 1, offset=ended.offset * 4)
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    ends = np.flatnonzero(data[offsets[0]:offsets[-1]] == ord(" ")) + (offsets[0] + 1)  # a word ends after each space
    bounds = np.r_[offsets[0], ends].astype(np.int32)
    words = pa.Array.from_buffers(pa.string(), ends.size, [None, pa.py_buffer(bounds), data_buffer])
    real = np.diff(bounds) > 1
    real_before = np.r_[0, np.cumsum(real)]
    counts = np.diff(real_before[np.searchsorted(ends, offsets, side="right")]).astype(np.int64)
    return category_hashes(words)[real], counts  # each distinct word hashed once


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
    shingles; a text without words gets EMPTY in every entry."""
    signatures = np.full((len(texts), PERMUTATIONS), EMPTY, dtype=np.uint32)
    for rows, block in _signed_blocks(texts):
        signatures[rows] = block
    return signatures


def minhash_keys(texts: pa.Array) -> tuple:
    """(n,) string array -> what finds near duplicates among them: (text_band_keys (n, BANDS) uint64, the low
    byte of each signature entry (n, PERMUTATIONS) uint8), taken block by block, so that the signatures
    are never held whole."""
    keys = np.empty((len(texts), BANDS), dtype=np.uint64)
    low = np.empty((len(texts), PERMUTATIONS), dtype=np.uint8)
    signed = np.zeros(len(texts), dtype=bool)
    for rows, block in _signed_blocks(texts):
        keys[rows] = _band_keys_slice(block)
        low[rows] = block  # the low byte (numpy casts by truncation)
        signed[rows] = True
    keys[~signed] = _band_keys_slice(np.full((1, PERMUTATIONS), EMPTY, dtype=np.uint32))  # texts without words
    low[~signed] = EMPTY & 0xFF
    return keys, low


def _signed_blocks(texts: pa.Array) -> Iterator[tuple]:
    """(n,) string array -> (rows, (len(rows), PERMUTATIONS) uint32 their signatures) for the texts with
    words, in blocks; a block is valid until the next one is taken."""
    words, counts = word_hashes(texts)
    firsts = np.r_[0, np.cumsum(counts)]
    shingle_words, shingles = [np.zeros(0, dtype=np.uint32)], [np.zeros(0, dtype=np.int64)]
    for at in range(0, counts.size, SLICE_TEXTS):  # in slices: small temporaries reuse freed memory, where
        end = min(at + SLICE_TEXTS, counts.size)  # large ones would be fresh pages the kernel must clear
        hashes, own = _shingled(words[firsts[at]:firsts[end]], counts[at:end])
        shingle_words.append(_shingle_words(hashes))
        shingles.append(own)
    return _signatures(np.concatenate(shingle_words), np.concatenate(shingles))


def _shingle_words(hashes: np.ndarray) -> np.ndarray:
    """(s,) uint64 shingle hashes -> (s,) odd uint32: the two halves exclusive-or'ed, the lowest bit set.
    Odd, because 0 would be the least of every permutation (_permute) of any text holding it."""
    return (hashes ^ (hashes >> _S32)).astype(np.uint32) | np.uint32(1)


def _permute(words: np.ndarray, out: np.ndarray) -> np.ndarray:
    """(c,) odd uint32 shingle words -> out (PERMUTATIONS, c): row p holds each word times the odd multiplier
    p, modulo 2^32, a permutation of the odd numbers (the words are already well mixed hashes, so these
    orders are as good as independent ones: tests/transforms/duplicates/test_text_signatures.py checks
    the estimate's bias and spread)."""
    return np.multiply(_MULTIPLIERS, words, out=out)


def _signatures(words: np.ndarray, shingles: np.ndarray) -> Iterator[tuple]:
    """_shingle_words of n texts, text after text, and (n,) shingles per text -> (rows, (len(rows),
    PERMUTATIONS) minimum of each permutation over each of those texts' shingles) for the texts with
    shingles; a block is valid until the next one is taken.

    Texts of about the same shingle count are signed together, BLOCK_TEXTS at a time: their j-th shingles
    are permuted as a (PERMUTATIONS, texts) block and folded into a running minimum, so every operation is
    a long vectorized one with no per-text reduction. A text shorter than its group's length repeats its
    last shingle, which leaves its minimum as it is. Texts longer than LONG_TEXT shingles are signed one by
    one, MINHASH_CHUNK shingles at a time."""
    starts = np.cumsum(shingles) - shingles
    lengths = _padded_lengths(shingles)
    order = np.argsort(lengths, kind="stable")
    bounds = np.flatnonzero(np.diff(lengths[order], prepend=-1, append=-1))
    block = np.empty((PERMUTATIONS, BLOCK_TEXTS), dtype=np.uint32)
    least = np.empty_like(block)
    for first, end in zip(bounds[:-1], bounds[1:]):
        length, group = int(lengths[order[first]]), order[first:end]
        if length == 0:
            continue
        if length > LONG_TEXT:
            for i, text in enumerate(group):
                yield group[i:i + 1], _long_signature(words[starts[text]:starts[text] + shingles[text]])[None, :]
            continue
        for at in range(0, group.size, BLOCK_TEXTS):
            texts = group[at:at + BLOCK_TEXTS]
            own_starts, own_last = starts[texts], shingles[texts] - 1
            low, out = least[:, :texts.size], block[:, :texts.size]
            low.fill(EMPTY)
            for j in range(length):
                np.minimum(low, _permute(words[own_starts + np.minimum(j, own_last)], out), out=low)
            yield texts, low.T


def _long_signature(words: np.ndarray) -> np.ndarray:
    """One long text's _shingle_words -> its (PERMUTATIONS,) signature, MINHASH_CHUNK shingles at a time."""
    least = np.full(PERMUTATIONS, EMPTY, dtype=np.uint32)
    for low in range(0, words.size, MINHASH_CHUNK):
        chunk = words[low:low + MINHASH_CHUNK]
        np.minimum(least, _permute(chunk, np.empty((PERMUTATIONS, chunk.size), dtype=np.uint32)).min(axis=1),
                   out=least)
    return least


def _padded_lengths(shingles: np.ndarray) -> np.ndarray:
    """(n,) shingle counts -> the length each text is signed at: its own up to EXACT_LENGTHS, then the next
    of a grid growing by an eighth (at most 1/8 of repeated shingles), LONG_TEXT + 1 above LONG_TEXT."""
    grid = [*range(EXACT_LENGTHS + 1)]
    while grid[-1] < LONG_TEXT:
        grid.append(min(LONG_TEXT, grid[-1] + max(1, grid[-1] // 8)))
    grid = np.array(grid + [LONG_TEXT + 1])
    return grid[np.searchsorted(grid, np.minimum(shingles, LONG_TEXT + 1))]


def text_band_keys(signatures: np.ndarray) -> np.ndarray:
    """(n, PERMUTATIONS) signatures -> (n, BANDS) uint64: band b hashes entries b*r .. b*r + r - 1 and is
    tagged b, so keys of different bands never collide. SLICE_TEXTS signatures at a time."""
    slices = [_band_keys_slice(signatures[at:at + SLICE_TEXTS]) for at in range(0, len(signatures), SLICE_TEXTS)]
    return np.concatenate([np.zeros((0, BANDS), dtype=np.uint64), *slices])


def _band_keys_slice(signatures: np.ndarray) -> np.ndarray:
    """text_band_keys of a few signatures: each band's entries two to a 64-bit word (entry 2i in the low
    half), the words folded in order into the band's salt by multiply and exclusive-or (a word that differs
    always changes the result), the last fold with folded_hashes' avalanche; tagged by band."""
    words = np.ascontiguousarray(signatures, dtype="<u4").view("<u8").astype(np.uint64, copy=False)  # any machine
    words = words.reshape(len(signatures), BANDS, ROWS_PER_BAND // 2)
    keys = _BAND_SALTS ^ words[:, :, 0]
    for k in range(1, ROWS_PER_BAND // 2 - 1):
        keys *= _BAND_MULTIPLIER
        keys ^= words[:, :, k]
    keys = folded_hashes(keys, [words[:, :, -1]])
    for band in range(BANDS):
        keys[:, band] = tagged_keys(keys[:, band], band)
    return keys


def text_similarity(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Signatures (m, PERMUTATIONS) and (m, PERMUTATIONS) -> (m,) float64 fraction of equal entries: the
    estimated Jaccard similarity of their shingle sets."""
    return np.mean(np.asarray(sig_a) == np.asarray(sig_b), axis=1, dtype=np.float64)
