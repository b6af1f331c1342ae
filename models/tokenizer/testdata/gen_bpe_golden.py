#!/usr/bin/env python3
"""Writes bpe_qwen3.json: Qwen3 token ids computed independently of the Go
code, for TestBPEGolden. Pre-tokenization uses the Python regex module with
Qwen2's original regex; BPE is the textbook loop (merge the lowest-ranked
adjacent pair until none is left); vocabulary and merges are read from the
GGUF with a minimal reader.

Usage: python3 gen_bpe_golden.py /path/to/shared/models > bpe_qwen3.json
Short texts keep their ids; the shared text files keep a count and the
SHA-256 of the ids as little-endian int32s.
"""
import hashlib
import json
import struct
import sys

import regex

MODELS = sys.argv[1] if len(sys.argv) > 1 else "../../../../shared/models"


def read_gguf_kv(path):
    """Returns the metadata of a GGUF v2/v3 file as a dict."""
    f = open(path, "rb").read()
    assert f[:4] == b"GGUF"
    _, _, nkv = struct.unpack_from("<IQQ", f, 4)
    off = 24
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def rstr(o):
        (n,) = struct.unpack_from("<Q", f, o)
        return f[o + 8:o + 8 + n].decode("utf-8", "surrogateescape"), o + 8 + n

    def rval(t, o):
        if t == 8:
            return rstr(o)
        if t == 9:
            et, n = struct.unpack_from("<IQ", f, o)
            o += 12
            out = []
            for _ in range(n):
                v, o = rval(et, o)
                out.append(v)
            return out, o
        (v,) = struct.unpack_from("<" + scalar[t], f, o)
        return v, o + struct.calcsize(scalar[t])

    kv = {}
    for _ in range(nkv):
        k, off = rstr(off)
        (t,) = struct.unpack_from("<I", f, off)
        v, off = rval(t, off + 4)
        kv[k] = v
    return kv


kv = read_gguf_kv(MODELS + "/qwen3-tiny-random.gguf")
ids = {t: i for i, t in enumerate(kv["tokenizer.ggml.tokens"])}
ranks = {}
for i, m in enumerate(kv["tokenizer.ggml.merges"]):
    ranks.setdefault(tuple(m.split(" ", 1)), i)

# GPT-2's byte -> character table.
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs = bs[:]
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + len(cs) - 188)
B2U = {b: chr(c) for b, c in zip(bs, cs)}

PAT = regex.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                    r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def bpe(word):
    parts = list(word)
    while len(parts) > 1:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get((parts[i], parts[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts


cache = {}


def encode(text):
    out = []
    for w in PAT.findall(text):
        m = "".join(B2U[b] for b in w.encode("utf-8"))
        if m not in cache:
            cache[m] = [ids[p] for p in bpe(m)]
        out += cache[m]
    return out


SHORT = [
    "你好，世界！今天天气很好。我们去公园散步吧？🙂 Ünïcödé ἀρχή 𝔘𝔫𝔦",
    "def f(x):\n\treturn x**2  # square\n\n\n    if x>=10: print('big')",
    "The year 2024 had 365 days; π≈3.14159. I'M sure you'VE seen it.",
    "  leading\r\n\r\n  and trailing   ",
    "مرحبا بالعالم ١٢٣ नमस्ते दुनिया 안녕하세요 세계 こんにちは世界",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbb !!!!!!!!!!!! ............",
    "<|im_start|> is plain text here\t\t\tx  \u00a0\u3000y",
]
FILES = [("texts/war-and-peace.txt", 100000), ("texts/TinyStories-valid.txt", 0)]


def main():
    out = {"generator": "gen_bpe_golden.py", "short": [], "files": []}
    for t in SHORT:
        out["short"].append({"text": t, "ids": encode(t)})
    for name, limit in FILES:
        data = open(MODELS + "/" + name, "rb").read()
        if limit:
            data = data[:limit]
            while data and (data[-1] & 0xC0) == 0x80:  # back to a whole character
                data = data[:-1]
            if data and data[-1] >= 0xC0:
                data = data[:-1]
        ids = encode(data.decode("utf-8"))
        digest = hashlib.sha256(struct.pack("<%di" % len(ids), *ids)).hexdigest()
        out["files"].append({"file": name, "bytes": len(data), "count": len(ids), "sha256": digest})
    w = sys.stdout.write
    w('{"generator": "gen_bpe_golden.py",\n"short": [\n')
    w(",\n".join(json.dumps(e, ensure_ascii=False) for e in out["short"]))
    w('\n],\n"files": [\n')
    w(",\n".join(json.dumps(e) for e in out["files"]))
    w("\n]}\n")


if __name__ == "__main__":
    main()
