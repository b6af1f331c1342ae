#!/usr/bin/env python3
"""Writes pretok.json: pre-tokenizer splits computed by an independent regex
engine (the Python `regex` module) for the hand-written splitters in
pretok.go to match.

Usage: python3 gen_pretok.py [N] > pretok.json

Each regex list is applied as llama.cpp's unicode_regex_split does: every
regex splits each chunk left by the one before into its matches and the
unmatched gaps between them. The LLaMA-3/Qwen2 contractions are written with
[sS] as llama.cpp rewrites (?i:...).
"""
import json
import random
import sys

import regex

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
L3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
      r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = L3.replace(r"\p{N}{1,3}", r"\p{N}")

PRES = {
    "gpt2": [GPT2],
    "llama-bpe": [L3],
    "qwen2": [QWEN2],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
    "starcoder": [r"\p{N}", GPT2],
}

ALPHABET = (
    list("aAbBzZ") + list("stremvldSTREMVLD") + ["é", "ß", "中", "文", "Ω", "ж", "ª"]
    + list("0123456789") + ["٣", "²", "Ⅻ", "½"]
    + [" ", " ", " ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2009", "\x0b", "\x0c", "\x85"]
    + list("'\"',.!?$+<=>^|~`(-_@#*/") + ["\u0301", "😀", "©", "€", "\x00", "\x1c", "、"]
)


def split(exprs, text):
    chunks = [text] if text else []
    for e in exprs:
        out = []
        for c in chunks:
            pos = 0
            for m in regex.finditer(e, c):
                if m.start() > pos:
                    out.append(c[pos:m.start()])
                out.append(m.group())
                pos = m.end()
            if pos < len(c):
                out.append(c[pos:])
        chunks = out
    return chunks


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 250
    rng = random.Random(1)
    texts = [
        "", " ", "  ", "hello world", "Hello, world!!!\n", "a   b", "a \n b", "x\r\n\r\ny",
        "don't I'M we'Ve they'LL", "'s's'S", "1234567 89", "v1.2.3", "  leading and trailing  ",
        "tab\tsep", "\n\n\n", "emoji 😀😀 here", "中文，标点。", "$100 + 20% = <x>",
    ]
    for _ in range(n):
        k = rng.randint(1, 24)
        texts.append("".join(rng.choice(ALPHABET) for _ in range(k)))
    cases = [{"text": t, "splits": {p: split(e, t) for p, e in PRES.items()}} for t in texts]
    out = sys.stdout
    out.write('{"generator": %s,\n"cases": [\n' % json.dumps("gen_pretok.py, Python regex " + regex.__version__))
    out.write(",\n".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in cases))
    out.write("\n]}\n")


if __name__ == "__main__":
    main()
