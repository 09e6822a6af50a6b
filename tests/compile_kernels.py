"""Compile every Triton kernel for NVIDIA targets on a machine with no GPU, and print what the code holds.

The interpreter (TRITON_INTERPRET=1) runs the kernels' Python, not Triton's compiler, so it cannot catch
what only compilation finds (loop-carried type changes, unsupported ops, a register cap ignored). Triton
compiles to PTX and a cubin with its bundled ptxas for any target without a device. Run by
tests/test_kernels_compile.py in a subprocess, with TRITON_INTERPRET unset (it changes what @triton.jit
returns). Prints one JSON object per line.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import tempfile

os.environ.pop("TRITON_INTERPRET", None)

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from sftasks.kernels import block_sparse, estimate, quest, vertical_slash  # noqa: E402

BF16, I32, F32 = "*bf16", "*i32", "*fp32"
TILE = dict(Q=BF16, K=BF16, V=BF16, Out=BF16, qk_scale="fp32")


SHARED_MEMORY_LIMIT = {90: 232448, 80: 166912}  # bytes a block may use: H100, A100 (CUDA occupancy tables)


def case(name, fn, pointers, constexprs, *, arch=90, num_warps=4, **options):
    return dict(name=name, fn=fn, pointers=pointers, constexprs=constexprs, arch=arch, num_warps=num_warps,
                options=options)


BLOCK_SPARSE_ARGS = dict(TILE, KDesc="i32", VDesc="i32", Idx=I32, Count=I32)
BLOCK_SPARSE_HOPPER = dict(BLOCK_SIZE=128, GROUP=7, HEAD_DIM=128, BLOCK_M=128, BLOCK_N=128, USE_TMA=False,
                           WARP_SPEC=False, KV_MAJOR=True)
BLOCK_SPARSE_TILES = block_sparse._tiles(128, 128, hopper=True)  # the default launch on an H100
VERTICAL_SLASH_ARGS = dict(TILE, KDesc="i32", VDesc="i32", SlashBits="*i8", SpanLo=I32, SpanHi=I32, SpanKind="*i8",
                           LiveSpans=I32, WideLo=I32, WideHi=I32, WideCount=I32, ColBits="*i8", Cols=I32, ColClean=I32,
                           ColCount=I32, VertK=BF16, VertV=BF16, VertKDesc="i32", VertVDesc="i32")
VERTICAL_SLASH_HOPPER = dict(GROUP=7, HEAD_DIM=128, BLOCK=128, BLOCK_N=128, USE_TMA=False, MASKED_STAGES=1)

TMA_KV = {name: f"tensordesc<bf16[{BLOCK_SPARSE_TILES[1]},{BLOCK_SPARSE_HOPPER['HEAD_DIM']}]>"  # [BLOCK_N, D] boxes
          for name in ("KDesc", "VDesc")}
VERTICAL_SLASH_TMA_ARGS = dict(VERTICAL_SLASH_ARGS, **TMA_KV, **{"Vert" + name: box for name, box in TMA_KV.items()})

CASES = [  # launch options as the wrappers' defaults set them (the prefill kernels launch with num_stages=2)
    case("block_sparse", block_sparse._block_sparse_fwd, dict(BLOCK_SPARSE_ARGS, **TMA_KV),
         dict(BLOCK_SPARSE_HOPPER, BLOCK_M=BLOCK_SPARSE_TILES[0], BLOCK_N=BLOCK_SPARSE_TILES[1], USE_TMA=True),
         num_warps=8, num_stages=2, maxnreg=BLOCK_SPARSE_TILES[2]),
    case("block_sparse pointers", block_sparse._block_sparse_fwd, BLOCK_SPARSE_ARGS,  # K/V a layout TMA cannot read
         dict(BLOCK_SPARSE_HOPPER, BLOCK_M=BLOCK_SPARSE_TILES[0], BLOCK_N=BLOCK_SPARSE_TILES[1]), num_warps=8,
         num_stages=2, maxnreg=BLOCK_SPARSE_TILES[2]),
    case("block_sparse block_n=128", block_sparse._block_sparse_fwd, BLOCK_SPARSE_ARGS, BLOCK_SPARSE_HOPPER,
         num_warps=8, num_stages=2),
    case("block_sparse block_size=256", block_sparse._block_sparse_fwd, BLOCK_SPARSE_ARGS,
         dict(BLOCK_SPARSE_HOPPER, BLOCK_SIZE=256), num_warps=8, num_stages=2),
    case("block_sparse sm80", block_sparse._block_sparse_fwd, BLOCK_SPARSE_ARGS,
         dict(BLOCK_SPARSE_HOPPER, BLOCK_SIZE=64, GROUP=4, HEAD_DIM=64, BLOCK_M=64, BLOCK_N=64), arch=80,
         num_stages=2),
    case("vertical_slash", vertical_slash._vertical_slash_fwd,  # the H100 default: K/V and the columns' copies by TMA
         VERTICAL_SLASH_TMA_ARGS,
         dict(VERTICAL_SLASH_HOPPER, BLOCK_N=64, USE_TMA=True), num_warps=8, num_stages=2, maxnreg=128),
    case("vertical_slash pointers", vertical_slash._vertical_slash_fwd, VERTICAL_SLASH_ARGS,
         dict(VERTICAL_SLASH_HOPPER, BLOCK_N=64), num_warps=8, num_stages=2, maxnreg=128),
    case("vertical_slash block_n=128", vertical_slash._vertical_slash_fwd, VERTICAL_SLASH_ARGS, VERTICAL_SLASH_HOPPER,
         num_warps=8, num_stages=2),
    case("vertical_slash sm80", vertical_slash._vertical_slash_fwd, VERTICAL_SLASH_ARGS, VERTICAL_SLASH_HOPPER,
         arch=80, num_warps=8, num_stages=2),
    *(case(f"block_sparse head_dim=256 sm{arch}", block_sparse._block_sparse_fwd, BLOCK_SPARSE_ARGS,
           dict(BLOCK_SPARSE_HOPPER, HEAD_DIM=256, **dict(zip(("BLOCK_M", "BLOCK_N"), block_sparse._tiles(128, 256)[:2]))),
           arch=arch, num_warps=8, num_stages=2) for arch in (90, 80)),
    *(case(f"vertical_slash head_dim=256 sm{arch}", vertical_slash._vertical_slash_fwd, VERTICAL_SLASH_ARGS,
           dict(VERTICAL_SLASH_HOPPER, HEAD_DIM=256, BLOCK=vertical_slash.max_block(256),
                BLOCK_N=vertical_slash.max_block(256)), arch=arch, num_warps=4, num_stages=2) for arch in (90, 80)),
    case("vertical_slash work lists", vertical_slash._work_lists,  # 128k: 5755 offsets, 1024 columns a head
         dict(Slash="*i64", Vert="*i64", SlashBits="*i8", SpanLo=I32, SpanHi=I32, SpanKind="*i8",
              WideLo=I32, WideHi=I32, WideCount=I32, ColBits="*i8", Cols=I32, SlashWords=I32, ColWords=I32,
              Before=I32, Scratch=I32, Live=I32, ColClean=I32, ColCount=I32),
         dict(NS=8192, NV=1024, BLOCK=128, BLOCK_N=64, WORDS_CHUNK=4096, BLOCKS_CHUNK=1024), num_warps=8),
    case("vertical_slash copy columns", vertical_slash._copy_columns, dict(K=BF16, V=BF16, Cols=I32, VertK=BF16, VertV=BF16),
         dict(GROUP=7, HEAD_DIM=128, ROWS=64)),
    case("last_query_scores", estimate._column_and_diagonal_mass,
         dict(Q=BF16, K=BF16, LSE=F32, Cols=F32, Diags=F32, Scratch=F32, qk_scale="fp32"),
         dict(GROUP=7, HEAD_DIM=128, BLOCK=64, ROWS=64)),
    case("quest bounds pdl", quest._page_bounds,
         dict(Q=BF16, KPages=BF16, PageTable=I32, SeqLens=I32, Lo=BF16, Hi=BF16, Ready="*i8", Bounds=F32, Arrived=I32),
         dict(GROUP=7, SHARE=True, HEAD_DIM=128, PAGE=16, CACHE_PAGE=16, ROWS=16, PAGES=32, BY_CACHE_PAGE=True,
              IEEE=False, PDL=True), launch_pdl=True),
    case("quest select paired pdl", quest._select_pages, dict(Bounds=F32, Chosen=I32, SeqLens=I32, PageTable=I32),
         dict(N=8192, CHUNK=256, PAGE=16, PAIRED=True, PDL=True, CACHE_PAGE=16, CACHE_SLOTS=True, NEXT_AT_START=True),
         num_warps=8, launch_pdl=True),
    case("quest select", quest._select_pages, dict(Bounds=F32, Chosen=I32, SeqLens=I32),
         dict(N=8192, CHUNK=8192, PAGE=16, PAIRED=False, PDL=False), num_warps=8),
    case("quest attend pdl", quest._attend_pages,
         dict(Q=BF16, KPages=BF16, VPages=BF16, PageTable=I32, SeqLens=I32, Chosen=I32, Acc=F32, Ms=F32, Ls=F32,
              Arrived=I32, Out=BF16, qk_scale="fp32"),
         dict(HEADS=7, GROUP=7, HEAD_DIM=128, PAGE=16, CACHE_PAGE=16, ROWS=16, BLOCK_N=64, PAGE_LANES=16, HEADS_P2=8, SPLITS=32,
              SPLITS_AT_ONCE=quest.MERGE_ELEMENTS // (8 * 128), PDL=True), num_warps=8, num_stages=2,
         launch_pdl=True),
    case("quest attend one wave pdl", quest._attend_pages,  # batch 1: a split's 16 pages in one tile
         dict(Q=BF16, KPages=BF16, VPages=BF16, PageTable=I32, SeqLens=I32, Chosen=I32, Acc=F32, Ms=F32, Ls=F32,
              Arrived=I32, Out=BF16, qk_scale="fp32"),
         dict(HEADS=7, GROUP=7, HEAD_DIM=128, PAGE=16, CACHE_PAGE=16, ROWS=16, BLOCK_N=256, PAGE_LANES=16, HEADS_P2=8,
              SPLITS=16, SPLITS_AT_ONCE=16, CACHE_SLOTS=True, PDL=True), num_warps=8, num_stages=2, launch_pdl=True),
]


def cuobjdump(cubin: bytes, flag: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([triton.knobs.nvidia.cuobjdump.path, flag, f.name], capture_output=True, text=True,
                              check=True).stdout


def registers_per_thread(cubin: bytes) -> int:
    """A thread's registers in the kernel (cuobjdump's resource report): with the warps, they bound how
    many programs share an SM."""
    return int(re.search(r"REG:(\d+)", cuobjdump(cubin, "-res-usage")).group(1))


def wgmma_counts(cubin: bytes) -> tuple[int, int]:
    """(Hopper matrix instructions, waits on them) in the machine code. When ptxas serialises wgmma (a
    performance warning only), every instruction is followed by its own wait."""
    sass = cuobjdump(cubin, "-sass").splitlines()
    return sum("HGMMA" in line for line in sass), sum("WARPGROUP.DEPBAR" in line for line in sass)


def compile_case(c) -> dict:
    fn = c["fn"]
    defaults = {p.name: p.default for p in fn.params if p.is_constexpr and p.default is not inspect.Parameter.empty}
    consts = {**defaults, **c["constexprs"]}  # as a launch that leaves them out
    signature = {n: "constexpr" if n in consts else c["pointers"].get(n, "i32") for n in fn.arg_names}
    # Every pointer and integer 16-divisible, as Triton specialises a launch on aligned tensors and sizes such as
    # 128k: the loads are then vectorised and software-pipelined through shared memory, which is what can
    # overflow it (an unaligned compile uses less and would hide that).
    aligned = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(fn.arg_names)
               if signature[n] not in ("constexpr", "fp32")}
    src = ASTSource(fn, signature, {(fn.arg_names.index(n),): v for n, v in consts.items()}, aligned)
    target = GPUTarget("cuda", c["arch"], 32)
    try:
        kernel = triton.compile(src, target=target, options=dict(num_warps=c["num_warps"], **c["options"]))
    except Exception as e:  # reported, not raised: the test names the case that failed
        return dict(name=c["name"], ok=False, error=f"{type(e).__name__}: {str(e)[:500]}")
    ptx = kernel.asm["ptx"]
    hgmma, hgmma_waits = wgmma_counts(kernel.asm["cubin"])
    return dict(name=c["name"], ok=bool(kernel.asm.get("cubin")), arch=c["arch"],
                wgmma="wgmma.mma_async" in ptx, mma="mma.sync" in ptx, griddepcontrol="griddepcontrol.wait" in ptx,
                maxnreg=".maxnreg" in ptx, shared=kernel.metadata.shared, registers=registers_per_thread(kernel.asm["cubin"]),
                release_acquire_atomic="atom.global.gpu.acq_rel" in ptx or "atom.acq_rel.gpu" in ptx,
                l1_bypassing_load="ld.global.cg" in ptx, tma="cp.async.bulk.tensor" in ptx, hgmma=hgmma,
                hgmma_waits=hgmma_waits,
                shared_limit=SHARED_MEMORY_LIMIT[c["arch"]])


if __name__ == "__main__":
    for c in CASES:
        print(json.dumps(compile_case(c)), flush=True)
