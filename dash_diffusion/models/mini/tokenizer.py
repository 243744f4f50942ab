"""A CLIP byte-level BPE tokenizer whose merges make every word of a small vocabulary one token.

CLIP's BPE splits a word into characters, the last one carrying ``</w>``, and repeatedly merges the
adjacent pair of lowest rank. For each word this module first lets the merges found so far segment it
(:func:`segment`), then appends the chain ``(s_1, s_2)``, ``(s_1s_2, s_3)``, ... over the resulting
symbols. Appended merges rank after all earlier ones, so they never change how an earlier word is
segmented, and every word ends as one token (checked against the real tokenizer by
:func:`single_token_words`). Other text still tokenizes through the 256 byte symbols.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..tiny import BOS_TOKEN, END_OF_WORD, EOS_TOKEN, _byte_symbols


def segment(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """The symbols CLIP's BPE makes of ``word`` with merge ranks ``ranks`` (lowest rank first, every
    occurrence of the chosen pair at once)."""
    symbols = list(word[:-1]) + [word[-1] + END_OF_WORD]
    while len(symbols) > 1:
        pairs = [(ranks.get(pair, len(ranks)), pair) for pair in zip(symbols, symbols[1:])]
        rank, best = min(pairs)
        if rank == len(ranks):
            break
        merged, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                merged.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def word_merges(words: list[str]) -> list[tuple[str, str]]:
    """The merge list (in rank order) that makes each word of ``words`` a single symbol."""
    ranks: dict[tuple[str, str], int] = {}
    for word in sorted(set(words)):
        symbols = segment(word, ranks)
        left = symbols[0]
        for right in symbols[1:]:
            ranks.setdefault((left, right), len(ranks))
            left += right
    return sorted(ranks, key=ranks.__getitem__)


def vocabulary_of(words: list[str]) -> dict[str, int]:
    """Token -> id: the byte symbols, the byte symbols ending a word, every merge result, BOS and EOS."""
    symbols = _byte_symbols()
    tokens = symbols + [s + END_OF_WORD for s in symbols]
    known = set(tokens)
    for left, right in word_merges(words):
        if left + right not in known:
            known.add(left + right)
            tokens.append(left + right)
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}


def write_word_tokenizer(folder: str | Path, words: list[str]) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` for ``words`` into ``folder`` (CLIPTokenizer reads them)."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    (target / "vocab.json").write_text(json.dumps(vocabulary_of(words), ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{left} {right}" for left, right in word_merges(words)]
    (target / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def single_token_words(tokenizer, words: list[str]) -> list[str]:
    """The words of ``words`` that ``tokenizer`` turns into exactly one token (a check for the merges)."""
    return [word for word in words if len(tokenizer(word, add_special_tokens=False).input_ids) == 1]
