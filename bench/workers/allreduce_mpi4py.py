"""One rank of `npm run bench -- allreduce`'s anchor: the same MPI as Glimpse's communicator, driven
by mpi4py (Debian's python3-mpi4py): Allreduce(MPI.IN_PLACE, buf) of float32 numpy buffers, summed.
The plan and the timing policy are allreduce_glimpse.ts's; see bench/lib/allreduce_plan.ts.

    python3 allreduce_mpi4py.py BYTES:ITERS[,BYTES:ITERS...] REPEATS

Rank 0 prints one line: RESULT_PREFIX, then JSON (per size, each repeat's seconds per all-reduce,
the slowest rank's).
"""
import json
import sys
import time

import mpi4py
import numpy as np
from mpi4py import MPI

RESULT_PREFIX = "ALLREDUCE_RESULT "  # bench/lib/allreduce_plan.ts's


def parse_plan(text):
    plan = []
    for item in text.split(","):
        nbytes, iters = (int(x) for x in item.split(":"))
        if nbytes < 4 or nbytes % 4 or iters < 1:
            raise SystemExit(f"allreduce_mpi4py: bad plan item {item!r}")
        plan.append((nbytes, iters))
    return plan


def main():
    plan = parse_plan(sys.argv[1])
    repeats = int(sys.argv[2])
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()

    # The bench measures a reduction only if one happens: every rank sends rank + 1.
    probe = np.full(3, rank + 1, dtype=np.float32)
    comm.Allreduce(MPI.IN_PLACE, probe, op=MPI.SUM)
    expected = size * (size + 1) / 2
    if not (probe == expected).all():
        raise SystemExit(f"allreduce_mpi4py: rank {rank} got {probe} from a sum all-reduce, expected {expected}")

    results = []
    for nbytes, iters in plan:
        # Zeros, as the Glimpse worker: repeated in-place sums would take other values to infinity.
        buf = np.zeros(nbytes // 4, dtype=np.float32)
        for _ in range(iters):  # warm-up: one untimed repeat
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        seconds = np.zeros(repeats, dtype=np.float32)
        for r in range(repeats):
            comm.Barrier()
            t0 = time.perf_counter_ns()
            for _ in range(iters):
                comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            seconds[r] = (time.perf_counter_ns() - t0) / 1e9 / iters
        comm.Allreduce(MPI.IN_PLACE, seconds, op=MPI.MAX)
        results.append({"bytes": nbytes, "iters": iters, "seconds": [float(s) for s in seconds]})
    if rank == 0:
        out = {
            "library": "mpi4py",
            "version": f"mpi4py {mpi4py.__version__}, numpy {np.__version__}",
            "mpi": MPI.Get_library_version().splitlines()[0].strip().rstrip("\x00"),
            "worldSize": size,
            "results": results,
        }
        print(RESULT_PREFIX + json.dumps(out), flush=True)


main()
