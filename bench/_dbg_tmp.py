import sys, torch
sys.path.insert(0, "bench")
from hf_gpu_check import build
from sftasks.methods.block_sparse import BlockSparse, block_sparse_attention as ref, build_block_index
from sftasks.methods.reference import dense_prefill
from sftasks.methods.hf import attach
from sftasks import kernels
r = lambda x, y: float((x.float() - y.float()).norm() / y.float().norm())
class Dbg(BlockSparse):
    name = "dbg"
    def prefill(self, q, k, v, layer):
        out = super().prefill(q, k, v, layer)
        idx = build_block_index(q, k, 64, 1 << 20)
        b = ref(q.float(), k.float(), v.float(), idx, 64)
        d = dense_prefill(q, k, v)
        a2 = kernels.block_sparse_attention(q.contiguous(), k.contiguous(), v.contiguous(), idx, 64)
        print(layer, tuple(q.shape), q.stride(), k.stride(), q.dtype, "out vs ref", r(out, b), "contig kernel vs ref", r(a2, b), "ref vs dense", r(b, d), "out vs dense", r(out, d), flush=True)
        return out
T = 8192
model = build(T)
attach(model, Dbg(chunk_size=64, top_chunks=1 << 20))
ids = torch.randint(0, 4096, (1, T), device="cuda")
with torch.inference_mode():
    model(ids[:, :256])
    model(ids, use_cache=False)
