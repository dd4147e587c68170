r"""benchmarks/train_step.py with the MN mix splitting batches of 2·MIN_ROWS samples or more
into splits of at least MIN_ROWS, eager and captured calls alike (MIN_ROWS sets both
kernels/mix.SPLIT_MIN_ROWS, 1024 by default: eager CNN batches are never split; and
GRAPH_SPLIT_MIN_ROWS, 16, for calls captured into CUDA graphs). An experiment, for
benchmarks/NOTES.md: what splitting batches across programs from that size changes, eager
and under CUDA graphs. Its rows are not report data: `--out` names a file in
$MN_REPORT_DATA (reports/data/ unless set, which the report reads), so point that elsewhere:

    MN_REPORT_DATA=reports/raw python tools/split_experiment.py 16 --models lenet,resnet20 \
        --execs eager,cudagraph --norms mn_triton --run-id exp-split16 \
        --out split_experiment-split16
"""

import runpy
import sys
from pathlib import Path

USAGE = "usage: python tools/split_experiment.py MIN_ROWS [train_step.py options]"
if sys.argv[1:2] in (["-h"], ["--help"]):
    print(f"{USAGE}\n\n{__doc__}")
    sys.exit(0)
if len(sys.argv) < 2 or not (sys.argv[1].isascii() and sys.argv[1].isdigit()):
    sys.exit(f"{USAGE}\n\n{__doc__}")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
import torch  # noqa: E402

from mn_triton.kernels import mix  # noqa: E402

mix.SPLIT_MIN_ROWS = mix.GRAPH_SPLIT_MIN_ROWS = int(sys.argv[1])
# With MN_TRITON_TRACE_KERNELS=1, compiled steps trace the ops' bodies, which read these
# rules; AOTAutograd's on-disk cache is keyed by the graph before that (README: torch.compile),
# so it could hand back a graph traced under other rules. Compile afresh instead.
torch._functorch.config.enable_autograd_cache = False
script = str(ROOT / "benchmarks" / "train_step.py")
sys.argv = [script, *sys.argv[2:]]
runpy.run_path(script, run_name="__main__")
