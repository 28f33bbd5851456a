# The PyTorch CPU side of `pnpm bench`: the same t5-small-shaped T5 (d_model 512, 6+6 layers, 8 heads,
# d_kv 64, d_ff 2048, vocab 32128, relu, tied head, random weights) written in plain torch as the
# reference's modeling_t5.py computes it (RMS norm without bias, unscaled attention, bucketed relative
# position bias from block 0, encoder once, cross keys/values projected once, a self-attention KV
# cache), so both sides do the same arithmetic. Prints one JSON line per measurement, as run.mjs does.
# Run by run.mjs with OMP_NUM_THREADS=2 and OMP_WAIT_POLICY=PASSIVE; usage: python3 pytorch_t5.py [--quick].
# `--export-onnx DIR` instead writes the same model (same seed, same weights) as ONNX graphs for run.mjs's
# onnxruntime-node rows: encoder.onnx, cross.onnx (cross keys/values once) and decoder-step.onnx (one greedy
# step with a self-attention KV cache in the graph: past in, present out, next token out).
import json
import math
import sys
import time

import torch

QUICK = "--quick" in sys.argv
SEQ, NEW_TOKENS = 128, (8 if QUICK else 32)
V, D, H, DKV, FF, L = 32128, 512, 8, 64, 2048, 6
BUCKETS, MAX_DISTANCE = 32, 128
torch.manual_seed(0)
torch.set_num_threads(2)


def lin(i, o):
    return torch.randn(o, i) * 0.05


def rms(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def bucket(rel, bidirectional):
    # _relative_position_bucket of modeling_t5.py.
    n = BUCKETS
    out = torch.zeros_like(rel)
    if bidirectional:
        n //= 2
        out += (rel > 0).long() * n
        rel = rel.abs()
    else:
        rel = -torch.clamp(rel, max=0)
    exact = n // 2
    large = exact + (torch.log(rel.float().clamp(min=1) / exact) / math.log(MAX_DISTANCE / exact) * (n - exact)).long()
    large = torch.clamp(large, max=n - 1)
    return out + torch.where(rel < exact, rel, large)


def bias(table, q_len, k_len, bidirectional, offset=0):
    ctx = torch.arange(offset, offset + q_len)[:, None]
    mem = torch.arange(k_len)[None, :]
    return table[bucket(mem - ctx, bidirectional)].permute(2, 0, 1)[None]  # [1, H, q, k]


def heads(x):
    return x.view(x.shape[0], -1, H, DKV).transpose(1, 2)  # [batch, H, seq, DKV]


def attend(q, k, v, b, o):
    scores = q @ k.transpose(-1, -2) + b  # no 1/sqrt(d): T5 folds it into the init
    ctx = scores.softmax(-1) @ v
    return ctx.transpose(1, 2).reshape(q.shape[0], -1, H * DKV) @ o.T


def block_weights(cross):
    w = {"ln0": torch.ones(D), "q": lin(D, H * DKV), "k": lin(D, H * DKV), "v": lin(D, H * DKV), "o": lin(H * DKV, D), "lnf": torch.ones(D), "wi": lin(D, FF), "wo": lin(FF, D)}
    if cross:
        w.update({"ln1": torch.ones(D), "cq": lin(D, H * DKV), "ck": lin(D, H * DKV), "cv": lin(D, H * DKV), "co": lin(H * DKV, D)})
    return w


shared = torch.randn(V, D)
enc_blocks, dec_blocks = [block_weights(False) for _ in range(L)], [block_weights(True) for _ in range(L)]
enc_rel, dec_rel = torch.randn(BUCKETS, H) * 0.1, torch.randn(BUCKETS, H) * 0.1
enc_ln, dec_ln = torch.ones(D), torch.ones(D)


def ff(x, w):
    return x + torch.relu(rms(x, w["lnf"]) @ w["wi"].T) @ w["wo"].T


def encoder(ids):
    x = shared[ids]
    b = bias(enc_rel, ids.shape[1], ids.shape[1], True)
    for w in enc_blocks:
        h = rms(x, w["ln0"])
        x = x + attend(heads(h @ w["q"].T), heads(h @ w["k"].T), heads(h @ w["v"].T), b, w["o"])
        x = ff(x, w)
    return rms(x, enc_ln)


def generate(ids, new_tokens, stamps):
    enc = encoder(ids)
    cross = [(heads(enc @ w["ck"].T), heads(enc @ w["cv"].T)) for w in dec_blocks]  # once per layer
    cache = [None] * L
    token, pos, tokens = torch.zeros(1, 1, dtype=torch.long), 0, []
    for _ in range(new_tokens):
        x = shared[token]
        b = bias(dec_rel, 1, pos + 1, False, offset=pos)
        for i, w in enumerate(dec_blocks):
            h = rms(x, w["ln0"])
            k, v = heads(h @ w["k"].T), heads(h @ w["v"].T)
            if cache[i] is not None:
                k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
            cache[i] = (k, v)
            x = x + attend(heads(h @ w["q"].T), k, v, b, w["o"])
            h = rms(x, w["ln1"])
            x = x + attend(heads(h @ w["cq"].T), cross[i][0], cross[i][1], 0, w["co"])
            x = ff(x, w)
        logits = (rms(x, dec_ln) * D**-0.5) @ shared.T  # tied head with the d_model^-0.5 rescale
        token = logits[:, -1:].argmax(-1)
        tokens.append(int(token))
        pos += 1
        stamps.append(time.perf_counter())
    return tokens


def median(xs):
    return sorted(xs)[len(xs) // 2]


def emit(o):
    print(json.dumps(o), flush=True)


class OnnxEncoder(torch.nn.Module):
    """ids [1, seq] int64 -> the encoder's last hidden state [1, seq, D]."""

    def forward(self, ids):
        return encoder(ids)


class OnnxCross(torch.nn.Module):
    """The encoder output -> every decoder layer's cross-attention keys and values (projected once)."""

    def forward(self, enc):
        return tuple(t for w in dec_blocks for t in (heads(enc @ w["ck"].T), heads(enc @ w["cv"].T)))


class OnnxDecoderStep(torch.nn.Module):
    """One greedy step with a KV cache: (token [1, 1], cross k/v x L, past self k/v x L) -> (next token, new past)."""

    def forward(self, token, *kv):
        cross, past = kv[: 2 * L], kv[2 * L :]
        x = shared[token]
        present = []
        for i, w in enumerate(dec_blocks):
            h = rms(x, w["ln0"])
            k, v = torch.cat([past[2 * i], heads(h @ w["k"].T)], 2), torch.cat([past[2 * i + 1], heads(h @ w["v"].T)], 2)
            if i == 0:
                # Positions 0..len-1 from the cache length, with tensor ops only so the graph keeps it dynamic.
                idx = torch.ones_like(k[0, 0, :, 0]).cumsum(0).long() - 1  # [len]
                b = dec_rel[bucket((idx - idx[-1])[None, :], False)].permute(2, 0, 1)[None]  # [1, H, 1, len]
            present += [k, v]
            x = x + attend(heads(h @ w["q"].T), k, v, b, w["o"])
            h = rms(x, w["ln1"])
            x = x + attend(heads(h @ w["cq"].T), cross[2 * i], cross[2 * i + 1], 0, w["co"])
            x = ff(x, w)
        logits = (rms(x, dec_ln) * D**-0.5) @ shared.T
        return (logits[:, -1:].argmax(-1), *present)


def export_onnx(folder):
    """The same model as three ONNX graphs (encoder, cross keys/values, decoder step with past) for onnxruntime-node."""
    import os

    os.makedirs(folder, exist_ok=True)
    ids = torch.randint(3, V - 100, (1, SEQ))
    enc = encoder(ids)
    cross = OnnxCross()(enc)
    kv_names = [f"{kind}_{i}" for i in range(L) for kind in ("k", "v")]
    torch.onnx.export(OnnxEncoder(), (ids,), f"{folder}/encoder.onnx", input_names=["ids"], output_names=["hidden"], dynamic_axes={"ids": {1: "seq"}, "hidden": {1: "seq"}}, opset_version=17)
    torch.onnx.export(OnnxCross(), (enc,), f"{folder}/cross.onnx", input_names=["hidden"], output_names=[f"cross_{n}" for n in kv_names], dynamic_axes={"hidden": {1: "seq"}, **{f"cross_{n}": {2: "seq"} for n in kv_names}}, opset_version=17)
    past = [torch.zeros(1, H, 1, DKV) for _ in range(2 * L)]
    dynamic = {**{f"cross_{n}": {2: "seq"} for n in kv_names}, **{f"past_{n}": {2: "past"} for n in kv_names}, **{f"present_{n}": {2: "len"} for n in kv_names}}
    torch.onnx.export(
        OnnxDecoderStep(),
        (torch.zeros(1, 1, dtype=torch.long), *cross, *past),
        f"{folder}/decoder-step.onnx",
        input_names=["token", *[f"cross_{n}" for n in kv_names], *[f"past_{n}" for n in kv_names]],
        output_names=["next", *[f"present_{n}" for n in kv_names]],
        dynamic_axes=dynamic,
        opset_version=17,
    )
    # What the graphs must reproduce: torch's greedy tokens for these ids (run.mjs checks onnxruntime's).
    with open(f"{folder}/check.json", "w") as f:
        json.dump({"ids": ids[0].tolist(), "tokens": generate(ids, 8, [])}, f)
    emit({"exported": folder, "graphs": ["encoder.onnx", "cross.onnx", "decoder-step.onnx"], "layers": L, "heads": H, "dKv": DKV})


if "--export-onnx" in sys.argv:
    with torch.no_grad():
        export_onnx(sys.argv[sys.argv.index("--export-onnx") + 1])
    sys.exit(0)

ids = torch.randint(3, V - 100, (1, SEQ))
ids[0, -1] = 1
base = {"model": "t5-small-shaped", "backend": "pytorch-cpu", "torch": torch.__version__, "threads": torch.get_num_threads()}
with torch.inference_mode():
    times = []
    for r in range(2 if QUICK else 6):
        t0 = time.perf_counter()
        encoder(ids)
        if r > 0:
            times.append((time.perf_counter() - t0) * 1000)
    emit({"bench": "encoder-forward", **base, "batch": 1, "seq": SEQ, "ms": round(median(times), 2), "times": [round(t, 1) for t in times]})
    generate(ids, 2, [])  # warm-up
    stamps = []
    t0 = time.perf_counter()
    generate(ids, NEW_TOKENS, stamps)
    rest = [(b - a) * 1000 for a, b in zip(stamps, stamps[1:])]
    emit({"bench": "greedy-generation", **base, "inputTokens": SEQ, "newTokens": len(stamps), "firstTokenMs": round((stamps[0] - t0) * 1000, 1), "msPerToken": round(median(rest), 2), "meanMsPerToken": round(sum(rest) / len(rest), 2)})
