"""Memory: peak memory of the local OT loss (forward + backward) as the batch grows.

Each batch size runs in a fresh process (so no allocator cache of a previous size hides a peak) on the
same embeddings as ``benchmarks.ot_loss`` (98 patches, up to 16 sentences, width 128). The peak is the
process's resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs`` once the inputs
exist) minus the resident set at that moment; on a GPU it is ``torch.cuda.max_memory_allocated``.

    python -m benchmarks.ot_memory [--quick]
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.common import parse_args, write_results
from benchmarks.ot_loss import batched_similarity, loss_step, make_batch

GIB = 2**30


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(batch: int, patches: int, sentences: int, dim: int) -> dict:
    """Peak extra bytes of one forward + backward of the local loss (run in a fresh process)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    inputs = [tensor.to(device) for tensor in make_batch(batch, patches, sentences, dim)]
    for index in (0, 2):
        inputs[index] = inputs[index].detach().requires_grad_()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        loss_step(batched_similarity, inputs)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        base = _status_kib("VmRSS")
        loss_step(batched_similarity, inputs)
        peak = (_status_kib("VmHWM") - base) * 1024
    plan_bytes = batch * batch * patches * sentences * 4  # one float32 [B, B, N, S] tensor
    return {"batch": batch, "peak_bytes": peak, "peak_gb": peak / GIB, "plan_tensor_gb": plan_bytes / GIB}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":  # child process: one size, JSON on stdout
        print(json.dumps(measure(*map(int, sys.argv[2:6]))))
        return
    args = parse_args(__doc__.splitlines()[0])
    sizes, shape = ([4, 8], (16, 4, 16)) if args.quick else ([8, 16, 32, 64, 128], (98, 16, 128))
    rows = []
    for batch in sizes:
        command = [sys.executable, "-m", "benchmarks.ot_memory", "--one", str(batch), *map(str, shape)]
        done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"batch {batch}: peak {rows[-1]['peak_gb']:.3f} GB")
    # growth exponent between the two largest sizes: 2 means the peak grows with B^2 (the B x B problems)
    small, large = rows[-2]["peak_bytes"], rows[-1]["peak_bytes"]
    growth = math.log(rows[-1]["batch"] / rows[-2]["batch"])
    exponent = math.log(large / small) / growth if small > 0 and large > 0 else None
    detail = {
        "what": "peak memory of the local OT loss, forward + backward, by batch size",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "patches": shape[0],
        "max_sentences": shape[1],
        "dim": shape[2],
        "rows": rows,
        "growth_exponent_largest_sizes": exponent,
    }
    peak_b128 = next((row["peak_gb"] for row in rows if row["batch"] == 128), None)
    write_results(args.out, "ot_memory", detail, {"local_loss_peak_gb_b128": peak_b128})


if __name__ == "__main__":
    main()
