"""The kernels compile for Hopper (sm_90) and Ampere (sm_80) with Triton's own compiler, no GPU needed.

The interpreter tests (test_kernels.py) check what the kernels compute; only compilation finds what the
interpreter never sees: type errors in loop-carried values, the tensor-core instructions the fast
paths depend on, launch options such as programmatic dependent launch (PDL) or a register cap that are
silently dropped. The compile runs in a subprocess (tests/compile_kernels.py) because TRITON_INTERPRET,
set by the interpreter tests, changes what @triton.jit returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def compiled() -> dict[str, dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = Path(__file__).with_name("compile_kernels.py")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    return {r["name"]: r for r in rows}


def test_every_kernel_compiles(compiled):
    assert {"block_sparse", "vertical_slash", "last_query_scores", "quest bounds pdl", "quest select",
            "quest attend pdl", "quest attend one wave pdl"} <= set(compiled)
    failed = {name: r.get("error") for name, r in compiled.items() if not r["ok"]}
    assert not failed, failed


def test_every_kernel_fits_the_shared_memory_of_its_gpu(compiled):
    """Triton raises OutOfResources only at launch, on the GPU: a kernel whose pipelined stage buffers
    outgrow the H100's 227 KB (the vertical-slash kernel once asked 288 KB) would pass every CPU test."""
    over = {name: (r["shared"], r["shared_limit"]) for name, r in compiled.items() if r["shared"] > r["shared_limit"]}
    assert not over, over


@pytest.mark.parametrize("name", ["block_sparse", "vertical_slash", "last_query_scores"])
def test_prefill_kernels_use_hopper_tensor_cores(compiled, name):
    """On sm_90 the attention tiles are wgmma instructions (the Hopper rate), not Ampere's mma.sync."""
    assert compiled[name]["wgmma"] and not compiled[name]["mma"]


@pytest.mark.parametrize("name", ["vertical_slash block_n=128", "vertical_slash head_dim=256 sm90"])
def test_vertical_slash_matrix_products_are_not_serialised(compiled, name):
    """ptxas may serialise a kernel's wgmma (each waits for the one before), with only an info message.
    The vertical-slash kernel's pipelined masked loops once caused that for the whole kernel, its band
    loop included: 42.1 ms at 128k on an H100, 40.1 ms without (bench/RESULTS.md). (The H100 default runs
    under a 128-register cap, where ptxas serialises them for want of registers, as in the block-sparse
    kernel: two programs an SM hide the waits.)"""
    r = compiled[name]
    assert r["hgmma"] > 0 and r["hgmma_waits"] < r["hgmma"] // 2, (r["hgmma"], r["hgmma_waits"])


def test_block_sparse_compiles_for_ampere_with_mma(compiled):
    assert compiled["block_sparse sm80"]["mma"] and not compiled["block_sparse sm80"]["wgmma"]


def test_register_cap_reaches_the_code(compiled):
    assert compiled["block_sparse"]["maxnreg"] and not compiled["block_sparse block_n=128"]["maxnreg"]


@pytest.mark.parametrize("name", ["block_sparse", "block_sparse pointers", "vertical_slash", "vertical_slash pointers"])
def test_default_h100_tile_fits_two_programs_per_sm(compiled, name):
    """The default H100 launch is fast because two programs share an SM (one's softmax runs under the
    other's matrix products): two must fit the SM's 228 KB of shared memory (the cap fits their registers),
    with K/V read through TMA or, for layouts TMA cannot read, through pointers."""
    assert 2 * compiled[name]["shared"] <= 228 * 1024


@pytest.mark.parametrize("name", ["block_sparse", "vertical_slash"])
def test_default_h100_tile_reads_kv_through_tma(compiled, name):
    """The default H100 tile reads each K/V tile as one TMA copy from its first row, with no address per
    element (block-sparse at 128k, 90%: 25.9 -> 23.8 ms, bench/RESULTS.md); pointer loads stay for layouts
    TMA cannot read."""
    assert compiled[name]["tma"] and compiled[name]["maxnreg"] and not compiled[f"{name} pointers"]["tma"]


def test_quest_bounds_fit_four_programs_per_sm(compiled):
    """The bounds launch waits on memory: the programs an SM holds at once set how much is in flight. Its
    register count is that of the summarise path, rarely taken. At 178 registers two 4-warp programs fitted
    an SM and the 128k call, cold in L2, took 28.3 µs on an H100; at 122, four fit and it took 25.1 µs."""
    assert compiled["quest bounds pdl"]["registers"] <= 65536 // (4 * 4 * 32)


def test_quest_waits_for_the_previous_kernel_only_with_pdl(compiled):
    """With PDL a kernel may start before the previous one ends: it must wait (griddepcontrol.wait)
    before reading that one's output; without PDL no wait is emitted."""
    for name in ("quest bounds pdl", "quest select paired pdl", "quest attend pdl"):
        assert compiled[name]["griddepcontrol"], name
    assert not compiled["quest select"]["griddepcontrol"]


def test_quest_split_merge_acquires_what_the_other_splits_released(compiled):
    """The last split to finish merges the others' partial outputs: its counter increment must release
    this split's stores and acquire theirs at GPU scope, and its loads must skip L1 (not coherent across
    SMs), or it may merge stale partials. The interpreter runs programs one by one and cannot see this."""
    assert compiled["quest attend pdl"]["release_acquire_atomic"]
    assert compiled["quest attend pdl"]["l1_bypassing_load"]
