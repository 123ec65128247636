#!/usr/bin/env bash
# Issue 6's BERT result (docs/RESULTS.md): masked-language modelling on Debian's package
# descriptions (configs/debian-bert-mlm.yaml) for BUDGET_S seconds of training steps; held-out
# masked-token accuracy and perplexity every eval.every steps (metrics.jsonl, report.html). The
# corpus is installed first when missing. Further arguments are config overrides.
#   GLIMPSE (default: node dist/src/cli/main.js), RUNS (default runs/results), BUDGET_S (default 1200)
set -euo pipefail
GLIMPSE=${GLIMPSE:-node dist/src/cli/main.js}
RUNS=${RUNS:-runs/results}
BUDGET_S=${BUDGET_S:-1200}
load() { uptime | sed 's/.*load/load/' || true; }
bash "$(dirname "$0")/../install-corpus.sh"
echo "# bert-mlm ($BUDGET_S s): start $(date -u +%H:%M:%S) $(load)"
$GLIMPSE train --config configs/debian-bert-mlm.yaml --time_budget_s "$BUDGET_S" --out "$RUNS/bert-mlm" \
  --progress lines --json "$@" < /dev/null
echo "# bert-mlm: end $(date -u +%H:%M:%S) $(load)"
