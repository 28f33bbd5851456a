"""The peers benchmark's PyTorch side: the networks of workloads.mjs, op for op, timed on the CPU.

Usage: python3 peers_torch.py '<workload json>' <reps> [<onnx path>]
Prints one JSON line. With an onnx path (bert workloads only) it also exports the same network there,
for the onnxruntime-node row. The caller sets OMP_NUM_THREADS and OMP_WAIT_POLICY.
"""
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
torch.manual_seed(0)


def block_params(layers, hidden, ffn, extra):
    shapes = {}
    for l in range(layers):
        for p in ("q", "k", "v", "o"):
            shapes[f"{l}.{p}.w"] = (hidden, hidden)
            shapes[f"{l}.{p}.b"] = (hidden,)
        shapes.update({f"{l}.up.w": (ffn, hidden), f"{l}.up.b": (ffn,), f"{l}.down.w": (hidden, ffn), f"{l}.down.b": (hidden,),
                       f"{l}.ln1.w": (hidden,), f"{l}.ln1.b": (hidden,), f"{l}.ln2.w": (hidden,), f"{l}.ln2.b": (hidden,)})
    shapes.update(extra)
    out = {}
    for name, shape in shapes.items():
        is_norm = ("ln" in name or "norm" in name) and name.endswith(".w")
        is_bias = name.endswith(".b") and not is_norm
        t = torch.ones(shape) if is_norm else torch.zeros(shape) if is_bias else torch.randn(shape) * 0.02
        out[name] = torch.nn.Parameter(t)
    return torch.nn.ParameterDict({k.replace(".", "_"): v for k, v in out.items()})


def heads(x, h):  # [B, L, H*D] -> [B, H, L, D]
    return x.reshape(x.shape[0], x.shape[1], h, -1).permute(0, 2, 1, 3)


def merge(x):  # [B, H, L, D] -> [B, L, H*D]
    return x.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1)


def attention(q, k, v):
    p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
    return p @ v


class Encoder(torch.nn.Module):
    def __init__(self, w, extra=None):
        super().__init__()
        self.w = w
        self.p = block_params(w["layers"], w["hidden"], w["ffn"], extra or {})

    def P(self, name):
        return self.p[name.replace(".", "_")]

    def block(self, l, x):
        P, H, hid = self.P, self.w["heads"], self.w["hidden"]
        q = heads(F.linear(x, P(f"{l}.q.w"), P(f"{l}.q.b")), H)
        k = heads(F.linear(x, P(f"{l}.k.w"), P(f"{l}.k.b")), H)
        v = heads(F.linear(x, P(f"{l}.v.w"), P(f"{l}.v.b")), H)
        a = F.linear(merge(attention(q, k, v)), P(f"{l}.o.w"), P(f"{l}.o.b"))
        h = F.layer_norm(a + x, (hid,), P(f"{l}.ln1.w"), P(f"{l}.ln1.b"), 1e-12)
        up = F.gelu(F.linear(h, P(f"{l}.up.w"), P(f"{l}.up.b")))
        return F.layer_norm(F.linear(up, P(f"{l}.down.w"), P(f"{l}.down.b")) + h, (hid,), P(f"{l}.ln2.w"), P(f"{l}.ln2.b"), 1e-12)

    def forward(self, x):
        for l in range(self.w["layers"]):
            x = self.block(l, x)
        return x


def bert(w, onnx_path):
    model = Encoder(w).eval()
    x = torch.randn(w["batch"], w["seq"], w["hidden"])
    if onnx_path:
        with torch.no_grad():
            torch.onnx.export(model, (x,), onnx_path, input_names=["x"], output_names=["y"], opset_version=17)

    def step():
        with torch.inference_mode():
            model(x)
    return step


class MLM(Encoder):
    def forward(self, ids, targets):
        P, w = self.P, self.w
        h = F.embedding(ids, P("emb.w")) + P("pos.w")
        h = F.layer_norm(h, (w["hidden"],), P("lnE.w"), P("lnE.b"), 1e-12)
        h = super().forward(h)
        logits = F.linear(h, P("head.w"), P("head.b")).reshape(-1, w["vocab"])
        return F.cross_entropy(logits, targets)


def mlm(w, _):
    model = MLM(w, {"emb.w": (w["vocab"], w["hidden"]), "pos.w": (w["seq"], w["hidden"]), "lnE.w": (w["hidden"],), "lnE.b": (w["hidden"],),
                    "head.w": (w["vocab"], w["hidden"]), "head.b": (w["vocab"],)})
    n = w["batch"] * w["seq"]
    ids = torch.tensor([(i * 7919) % w["vocab"] for i in range(n)]).reshape(w["batch"], w["seq"])
    targets = torch.tensor([(i * 104729) % w["vocab"] if i % 20 < 3 else -100 for i in range(n)])
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        model(ids, targets).backward()
        opt.step()
    return step


def decode(w, _):
    hid, H = w["hidden"], w["heads"]
    D = hid // H
    model = Encoder(w, {"emb.w": (w["vocab"], hid), "lnF.w": (hid,), "lnF.b": (hid,), "head.w": (w["vocab"], hid)}).eval()
    P = model.P
    cache = [(torch.randn(1, H, w["cached"], D), torch.randn(1, H, w["cached"], D)) for _ in range(w["layers"])]
    token = torch.tensor([[17]])

    def step():
        with torch.inference_mode():
            x = F.embedding(token, P("emb.w"))
            for l in range(w["layers"]):
                h = F.layer_norm(x, (hid,), P(f"{l}.ln1.w"), P(f"{l}.ln1.b"))
                q = heads(F.linear(h, P(f"{l}.q.w"), P(f"{l}.q.b")), H)
                k = torch.cat([cache[l][0], heads(F.linear(h, P(f"{l}.k.w"), P(f"{l}.k.b")), H)], 2)
                v = torch.cat([cache[l][1], heads(F.linear(h, P(f"{l}.v.w"), P(f"{l}.v.b")), H)], 2)
                x = x + F.linear(merge(attention(q, k, v)), P(f"{l}.o.w"), P(f"{l}.o.b"))
                h2 = F.layer_norm(x, (hid,), P(f"{l}.ln2.w"), P(f"{l}.ln2.b"))
                x = x + F.linear(F.gelu(F.linear(h2, P(f"{l}.up.w"), P(f"{l}.up.b"))), P(f"{l}.down.w"), P(f"{l}.down.b"))
            F.linear(F.layer_norm(x, (hid,), P("lnF.w"), P("lnF.b")), P("head.w")).argmax(-1)
    return step


def main():
    w = json.loads(sys.argv[1])
    reps = int(sys.argv[2])
    onnx_path = sys.argv[3] if len(sys.argv) > 3 else None
    step = {"bert": bert, "mlm": mlm, "decode": decode}[w["kind"]](w, onnx_path)
    for _ in range(2):
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"workload": w["name"], "engine": f"pytorch-{torch.__version__}-cpu", "threads": torch.get_num_threads(),
                      "median_ms": round(statistics.median(times), 2), "reps": reps, "ms": [round(t, 2) for t in times]}), flush=True)


main()
