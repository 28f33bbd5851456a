"""PyTorch CPU float32 side of `pnpm bench` (bench/run.mjs spawns it): a hand-written ChatGLM-6B block
stack in torch (transformers is not available) on the same shapes as the JS bench: hidden 4096, 32 heads,
inner 16384, vocab 130528, seq-first [seq, batch, hidden], 2-D rotary (position and block position, half
the head dim each), deep-norm residual alpha = sqrt(2 * 28) as the reference, GELU (tanh form) MLP,
separate word_embeddings and lm_head, KV cache. Constant weights, as the JS bench's float weights (drawing
10^9 random values takes minutes here, and the timing does not depend on the values).

One JSON line per measurement, the JS bench's tags with backend "pytorch-cpu":
    prefill  forward of the prompt, tokens/s
    decode   cached greedy steps, median ms/token, peak RSS
Usage: python3 torch_chatglm.py --layers 2 --prompt 16 --tokens 8   (run with OMP_WAIT_POLICY=PASSIVE)
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F

HIDDEN, HEADS, INNER, VOCAB = 4096, 32, 16384, 130528
HEAD_DIM = HIDDEN // HEADS
ALPHA = math.sqrt(2 * 28)


def rotary_tables(positions, dim):
    """cos / sin [seq, 1, 1, dim] for integer positions (the reference's rotate-half layout)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos()[:, None, None, :], emb.sin()[:, None, None, :]


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Block:
    def __init__(self, layer_id):
        u = lambda *shape: torch.full(shape, 0.01)
        self.ln1 = (torch.ones(HIDDEN), torch.zeros(HIDDEN))
        self.qkv = (u(3 * HIDDEN, HIDDEN), torch.zeros(3 * HIDDEN))
        self.dense = (u(HIDDEN, HIDDEN), torch.zeros(HIDDEN))
        self.ln2 = (torch.ones(HIDDEN), torch.zeros(HIDDEN))
        self.h_to_4h = (u(INNER, HIDDEN), torch.zeros(INNER))
        self.four_h_to_h = (u(HIDDEN, INNER), torch.zeros(HIDDEN))
        self.coeff = float(layer_id + 1)

    def __call__(self, h, rot, mask, past):
        seq, batch, _ = h.shape
        x = F.layer_norm(h, (HIDDEN,), *self.ln1, eps=1e-5)
        qkv = F.linear(x, *self.qkv).view(seq, batch, HEADS, 3 * HEAD_DIM)  # [s, b, heads, 3 * hd]
        q, k, v = qkv.chunk(3, dim=-1)
        (cos1, sin1), (cos2, sin2) = rot
        half = HEAD_DIM // 2
        q = torch.cat((rotate(q[..., :half], cos1, sin1), rotate(q[..., half:], cos2, sin2)), dim=-1)
        k = torch.cat((rotate(k[..., :half], cos1, sin1), rotate(k[..., half:], cos2, sin2)), dim=-1)
        if past is not None:
            k = torch.cat((past[0], k), dim=0)
            v = torch.cat((past[1], v), dim=0)
        present = (k, v)
        # [b * heads, s, hd] @ [b * heads, hd, t]: the reference's baddbmm with layer-scaled queries
        qh = (q / (math.sqrt(HEAD_DIM) * self.coeff)).permute(1, 2, 0, 3).reshape(batch * HEADS, seq, HEAD_DIM)
        kh = k.permute(1, 2, 3, 0).reshape(batch * HEADS, HEAD_DIM, -1)
        vh = v.permute(1, 2, 0, 3).reshape(batch * HEADS, -1, HEAD_DIM)
        scores = torch.bmm(qh, kh) * self.coeff
        if mask is not None:
            scores = scores.masked_fill(mask, -10000.0)
        ctx = torch.bmm(F.softmax(scores, dim=-1), vh)  # [b * heads, s, hd]
        ctx = ctx.view(batch, HEADS, seq, HEAD_DIM).permute(2, 0, 1, 3).reshape(seq, batch, HIDDEN)
        h = x * ALPHA + F.linear(ctx, *self.dense)
        x = F.layer_norm(h, (HIDDEN,), *self.ln2, eps=1e-5)
        mlp = F.linear(F.gelu(F.linear(x, *self.h_to_4h), approximate="tanh"), *self.four_h_to_h)
        return x * ALPHA + mlp, present


class Model:
    def __init__(self, layers):
        self.word_embeddings = torch.full((VOCAB, HIDDEN), 0.01)
        self.blocks = [Block(i) for i in range(layers)]
        self.final_ln = (torch.ones(HIDDEN), torch.zeros(HIDDEN))
        self.lm_head = torch.full((VOCAB, HIDDEN), 0.01)

    def __call__(self, ids, positions, block_positions, mask, past):
        h = F.embedding(ids, self.word_embeddings).transpose(0, 1)  # [s, b, hidden]
        rot = (rotary_tables(positions, HEAD_DIM // 2), rotary_tables(block_positions, HEAD_DIM // 2))
        presents = []
        for i, block in enumerate(self.blocks):
            h, present = block(h, rot, mask, None if past is None else past[i])
            presents.append(present)
        h = F.layer_norm(h, (HIDDEN,), *self.final_ln, eps=1e-5)
        return F.linear(h[-1:], self.lm_head), presents  # logits of the last position [1, b, vocab]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tag = {"family": "chatglm", "layers": a.layers, "hidden": HIDDEN, "weights": "float32", "backend": "pytorch-cpu", "threads": a.threads, "torch": torch.__version__}
    with torch.inference_mode():
        t0 = time.perf_counter()
        model = Model(a.layers)
        print(json.dumps({**tag, "bench": "build", "ms": round((time.perf_counter() - t0) * 1000)}), flush=True)
        n = a.prompt
        ids = torch.tensor([[5 + (i * 7919) % 120000 for i in range(n - 2)] + [130001, 130004]])
        # the prompt is context up to <bos> (bidirectional) then <bos>: positions 0..n-2, [gMASK]'s for <bos>
        positions = torch.tensor(list(range(n - 1)) + [n - 2])
        block_positions = torch.tensor([0] * (n - 1) + [1])
        mask = torch.zeros(n, n, dtype=torch.bool)
        t1 = time.perf_counter()
        logits, past = model(ids, positions, block_positions, mask, None)
        nxt = int(logits[0, 0].argmax())
        prefill = time.perf_counter() - t1
        print(json.dumps({**tag, "bench": "prefill", "promptTokens": n, "ms": round(prefill * 1000), "tokensPerSecond": round(n / prefill, 3)}), flush=True)
        times = []
        for i in range(a.tokens):
            t = time.perf_counter()
            logits, past = model(torch.tensor([[nxt]]), torch.tensor([n - 2]), torch.tensor([2 + i]), None, past)
            nxt = int(logits[0, 0].argmax())
            times.append(time.perf_counter() - t)
        med = sorted(times)[len(times) // 2] * 1000
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({**tag, "bench": "decode", "tokens": a.tokens, "msPerToken": round(med), "tokensPerSecond": round(1000 / med, 3), "peakRssGB": round(peak / 2**30, 3)}), flush=True)


if __name__ == "__main__":
    main()
