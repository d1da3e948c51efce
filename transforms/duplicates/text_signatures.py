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
shingle of all its words), each hashed once from its words' hashes and folded to 32 bits; permutation p
maps a folded shingle w to murmur3's 32-bit finaliser, without its last step, of w ^ seed p (each step a
bijection of uint32), and the signature keeps each permutation's minimum. Two texts agree on an entry with
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
them as ascii_lower does; each distinct word is hashed once; the permutations run on uint32 (twice as many
to a vector instruction as uint64); texts of about the same shingle count are permuted together, their j-th
shingles as one (PERMUTATIONS, texts) block folded into a running minimum (_signatures), so no step reduces
text by text. 10^6 texts of 5 to 25 words (bench/make_csv.py's labeled rows) take about 0.8 s on one core
for the signatures after their words, against 1.75 s with 64-bit permutations reduced text by text.
"""
import hashlib
import unicodedata

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

_SEEDS = np.frombuffer(hashlib.shake_128(b"finetune-etl minhash32").digest(4 * PERMUTATIONS), dtype="<u4")
_SEEDS = _SEEDS.astype(np.uint32)  # (PERMUTATIONS,) native uint32
_SHINGLE_SALT = np.uint64(0x5A1F_9E37_0B0E_D0C5)
_BAND_SALT = np.uint64(0xBA4D_5EED_0F1E_2A7B)
_S13, _S16, _S32 = np.uint32(13), np.uint32(16), np.uint64(32)
_C1, _C2 = np.uint32(0x85EB_CA6B), np.uint32(0xC2B2_AE35)  # murmur3's 32-bit finaliser constants
_SEED_PARTS = _SEEDS ^ (_SEEDS >> _S16)  # the seeds' part of the finaliser's first step
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
    shingles; a text without words gets EMPTY in every entry."""
    words, counts = word_hashes(texts)
    firsts = np.r_[0, np.cumsum(counts)]
    shingle_words, shingles = [np.zeros(0, dtype=np.uint32)], [np.zeros(0, dtype=np.int64)]
    for at in range(0, counts.size, SLICE_TEXTS):  # in slices: small temporaries reuse freed memory, where
        end = min(at + SLICE_TEXTS, counts.size)  # large ones would be fresh pages the kernel must clear
        hashes, own = _shingled(words[firsts[at]:firsts[end]], counts[at:end])
        shingle_words.append(_shingle_words(hashes))
        shingles.append(own)
    return _signatures(np.concatenate(shingle_words), np.concatenate(shingles))


def _permuted(words: np.ndarray) -> np.ndarray:
    """(s,) uint32 shingle words (_shingle_words) -> (PERMUTATIONS, s) uint32: row p is permutation p of
    each, the one minhash_signatures takes the minimum of."""
    out = np.empty((PERMUTATIONS, words.size), dtype=np.uint32)
    return _permute(words, out, np.empty_like(out))


def _shingle_words(hashes: np.ndarray) -> np.ndarray:
    """(s,) uint64 shingle hashes -> (s,) uint32: the two halves exclusive-or'ed, then the murmur3
    finaliser's first step (w ^ w >> 16), which _permute shares between all permutations."""
    words = (hashes ^ (hashes >> _S32)).astype(np.uint32)
    return words ^ (words >> _S16)


def _permute(words: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """(c,) uint32 shingle words -> out (PERMUTATIONS, c): row p holds murmur3's 32-bit finaliser, without
    its last step, of (shingle ^ seed p): (w ^ seed part) * C1, h ^= h >> 13, h * C2. Every step is a
    bijection of uint32, so each row is a permutation of the shingles' 32-bit hashes. In place."""
    np.bitwise_xor(_SEED_PARTS[:, None], words, out=out)
    out *= _C1
    np.right_shift(out, _S13, out=scratch)
    out ^= scratch
    out *= _C2
    return out


def _signatures(words: np.ndarray, shingles: np.ndarray) -> np.ndarray:
    """_shingle_words of n texts, text after text, and (n,) shingles per text -> (n, PERMUTATIONS) minimum
    of each permutation over each text's shingles (EMPTY for a text without any).

    Texts of about the same shingle count are signed together, BLOCK_TEXTS at a time: their j-th shingles
    are permuted as a (PERMUTATIONS, texts) block and folded into a running minimum, so every operation is
    a long vectorized one with no per-text reduction. A text shorter than its group's length repeats its
    last shingle, which leaves its minimum as it is. Texts longer than LONG_TEXT shingles are signed one by
    one, MINHASH_CHUNK shingles at a time."""
    signatures = np.full((shingles.size, PERMUTATIONS), EMPTY, dtype=np.uint32)
    starts = np.cumsum(shingles) - shingles
    lengths = _padded_lengths(shingles)
    order = np.argsort(lengths, kind="stable")
    bounds = np.flatnonzero(np.diff(lengths[order], prepend=-1, append=-1))
    block = np.empty((PERMUTATIONS, BLOCK_TEXTS), dtype=np.uint32)
    least, scratch = np.empty_like(block), np.empty_like(block)
    for first, end in zip(bounds[:-1], bounds[1:]):
        length, group = int(lengths[order[first]]), order[first:end]
        if length == 0:
            continue
        if length > LONG_TEXT:
            for text in group:
                signatures[text] = _long_signature(words[starts[text]:starts[text] + shingles[text]])
            continue
        for at in range(0, group.size, BLOCK_TEXTS):
            texts = group[at:at + BLOCK_TEXTS]
            own_starts, own_last = starts[texts], shingles[texts] - 1
            low, out, spare = least[:, :texts.size], block[:, :texts.size], scratch[:, :texts.size]
            low.fill(EMPTY)
            for j in range(length):
                np.minimum(low, _permute(words[own_starts + np.minimum(j, own_last)], out, spare), out=low)
            signatures[texts] = low.T
    return signatures


def _long_signature(words: np.ndarray) -> np.ndarray:
    """One long text's _shingle_words -> its (PERMUTATIONS,) signature, MINHASH_CHUNK shingles at a time."""
    least = np.full(PERMUTATIONS, EMPTY, dtype=np.uint32)
    for low in range(0, words.size, MINHASH_CHUNK):
        np.minimum(least, _permuted(words[low:low + MINHASH_CHUNK]).min(axis=1), out=least)
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
