#!/usr/bin/env bash
# The one prepared GPU check (issue 17): the memory benchmark at 7B and 1B, then the CUDA-marked tests.
#
# Three steps, because the lent GPU machine cannot reach a package registry: its image has Python 3.12 with
# its own torch (2.11, CUDA 13) and transformers (5.17), and none of the optimizer libraries.
#
#   1. here, with network:   bash scripts/device_check.sh prepare
#      Downloads the wheels the device lacks (versions from constraints.txt) and builds the project's own
#      wheels into .whl/ (git-ignored), about 21 MiB: transformers 5.23 (the device has 5.17; the core needs
#      >= 5.23), bitsandbytes with only its CUDA 13 / CPU libraries kept (the full wheel is 43 MB of the
#      64 MiB a device call may carry), the optimizer libraries of every plugin, and trainer-optim + plugins.
#   2. on the device, once:   run(command="bash scripts/device_check.sh", carry=[".whl"], timeout_s=600)
#      Installs .whl/*.whl into /tmp/site (no index, no deps), then within about 9 minutes:
#        - python scripts/bench_gpu.py --size 7b,1b  (every row, each in a fresh process; 7B first, GaLore's
#          headline row first within a size; BENCH_BUDGET=390 s for all rows, a row at most 240 s: rows the
#          budget does not reach are recorded as "not run"; 3 warm-up + 5 measured steps per row);
#        - pytest -m cuda over tests/ and plugins/*/tests (47 tests; TEST_BUDGET=90 s).
#      If device time remains and the budget cut 1B rows, a second call on the still-warm machine merges:
#        run(command="BENCH_SIZES=1b RUN_TESTS=0 BENCH_BUDGET=200 bash scripts/device_check.sh", carry=[".whl"])
#      Writes to $OUT: results.json, results.md, peak_memory.png, benchmarks.md (docs as written there),
#      bench.log, tests.log, env.txt (7 of the 8 files a call may return).
#   3. here, with the returned files:
#      python scripts/bench_gpu.py --report-only --write-docs --results <files_at>/results.json
#      fills the GPU section of docs/benchmarks.md (tables, verdicts, the command of every row) and
#      docs/bench_gpu_peak_memory.png: commit those two (results/ is git-ignored).
#
# Device budget: 15 minutes per session in all, start-up (~2-3 min) included; this command ends by ~9 min.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=.whl
MODE=${1:-run}

pin() {  # the version constraints.txt pins for a distribution
    local version
    version=$(grep -iE "^$1==" constraints.txt | head -1 | cut -d= -f3)
    [ -n "$version" ] || { echo "device_check: $1 is not pinned in constraints.txt" >&2; exit 2; }
    echo "$1==$version"
}

prepare() {
    local python=${PYTHON:-.venv/bin/python}
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    # The device: x86-64, CPython 3.12, manylinux (its README); --no-deps: each missing package is named.
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d "$WHEELS" \
        "$(pin transformers)" "$(pin bitsandbytes)" "$(pin galore-torch)" "$(pin apollo-torch)" \
        "$(pin lomo-optim)" "$(pin flashoptim)" "$(pin torch-optimi)" "$(pin schedulefree)" \
        "$(pin grokadamw)" "$(pin pytorch-optimizer)" || exit 1
    # bitsandbytes ships one library per CUDA / ROCm / XPU version; the device's torch is built for CUDA 13.
    "$python" - "$WHEELS" <<'EOF' || exit 1
import re, sys, zipfile
from pathlib import Path

wheel = next(Path(sys.argv[1]).glob("bitsandbytes-*.whl"))
drop = re.compile(r"bitsandbytes/libbitsandbytes_(cuda1[0-2]\d|rocm\d+|xpu\d*)\.(so|dll|dylib)$")
slim = wheel.with_suffix(".slim")
with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if drop.search(item.filename):
            continue
        data = src.read(item)
        if item.filename.endswith(".dist-info/RECORD"):  # keep RECORD true to the files that remain
            lines = [ln for ln in data.decode().splitlines() if not drop.search(ln.split(",", 1)[0])]
            data = ("\n".join(lines) + "\n").encode()
        dst.writestr(item, data)
before = wheel.stat().st_size
slim.replace(wheel)
print(f"bitsandbytes: {before / 2**20:.1f} MiB -> {wheel.stat().st_size / 2**20:.1f} MiB (CUDA 13 and CPU kept)")
EOF
    # The project itself, as built from this working tree (rebuild before each device call).
    "$python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$WHEELS" ./core ./plugins/*/ || exit 1
    du -sh "$WHEELS"
    ls "$WHEELS"
    echo
    echo "next: run(command=\"bash scripts/device_check.sh\", carry=[\"$WHEELS\"], timeout_s=600)"
}

run() {
    # results/bench_gpu is git-ignored and stays on a warm device between calls, so a second call (say
    # BENCH_SIZES=1b RUN_TESTS=0, for rows the budget cut) merges into the first call's results.json.
    local out=${OUT:-results/device_check} results=results/bench_gpu
    local sizes=${BENCH_SIZES:-7b,1b} bench_budget=${BENCH_BUDGET:-390} test_budget=${TEST_BUDGET:-90}
    local start=$SECONDS
    mkdir -p "$out"
    say() { echo "[device_check +$((SECONDS - start))s] $*"; }
    ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "device_check: no wheels in $WHEELS: run 'bash scripts/device_check.sh prepare' here first, then carry $WHEELS" >&2; exit 2; }
    say "installing $(ls "$WHEELS"/*.whl | wc -l) wheels into /tmp/site"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
    {
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
        python3 -c "import sys, torch, transformers, bitsandbytes, trainer_optim; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available()); print('transformers', transformers.__version__, 'bitsandbytes', bitsandbytes.__version__, 'trainer_optim', trainer_optim.__version__)"
        python3 -m trainer_optim list
    } >"$out/env.txt" 2>&1
    cat "$out/env.txt"

    say "benchmark: sizes $sizes in that order, budget ${bench_budget} s for all rows"
    timeout $((bench_budget + 60)) python3 scripts/bench_gpu.py --size "$sizes" --steps 5 --warmup 3 \
        --budget "$bench_budget" --row-timeout 240 --out "$results" --write-docs 2>&1 | tee "$out/bench.log"
    local bench_rc=${PIPESTATUS[0]}
    if [ -f "$results/results.json" ]; then
        cp "$results"/results.json "$results"/results.md docs/benchmarks.md "$out"/
        cp "$results"/peak_memory.png "$out"/ 2>/dev/null
    else
        say "no $results/results.json: nothing was measured (bench.log says why)"
        bench_rc=3
    fi

    local test_rc=0
    if [ "${RUN_TESTS:-1}" = 1 ]; then
        say "CUDA-marked tests, budget ${test_budget} s"
        timeout "$test_budget" python3 -m pytest -m cuda -p no:cacheprovider -q --continue-on-collection-errors \
            tests plugins/*/tests 2>&1 | tee "$out/tests.log"
        test_rc=${PIPESTATUS[0]}
    fi
    say "done: bench exit $bench_rc, tests exit $test_rc (124 = budget reached)"
    [ "$bench_rc" -eq 0 ] && [ "$test_rc" -eq 0 ]
}

case "$MODE" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash scripts/device_check.sh [prepare|run]" >&2; exit 2 ;;
esac
