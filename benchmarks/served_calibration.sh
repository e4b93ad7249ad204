#!/usr/bin/env bash
# Are a served run's probabilities honest? curl N test photos to `ocula serve` and compare the mean
# top probability with the accuracy on the same photos (issue 15: within 0.03).
#
#   benchmarks/served_calibration.sh /tmp/ocula-runs/grocery-phone2 ../shared/data/grocery/test.txt 300
#
# MANIFEST is a `path, label_id, ...` file (the grocery manifests) whose label ids index the run's
# labels in order, or a folder of class folders. Prints one JSON line: images, accuracy,
# mean_top_probability, gap. Needs only curl and the project's venv.
set -euo pipefail
run=$1; manifest=$2; n=${3:-300}; port=${PORT:-8931}
here=$(cd "$(dirname "$0")/.." && pwd)
py=$here/.venv/bin/python
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

"$here/.venv/bin/ocula" serve "$run" --port "$port" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 120); do curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.5; done

# path <TAB> label name, N rows spread evenly over the manifest
"$py" - "$run" "$manifest" "$n" >"$work/photos.tsv" <<'EOF'
import json, sys
from pathlib import Path
run, manifest, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
labels = json.loads((run / "model" / "card.json").read_text())["labels"]
if manifest.is_dir():
    rows = [(str(p), p.parent.name) for p in sorted(manifest.glob("*/*")) if p.is_file()]
else:
    root = manifest.parent
    rows = []
    for line in manifest.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[1].isdigit():
            rows.append((str(root / parts[0].lstrip("/")), labels[int(parts[1])]))
step = max(1, len(rows) // n)
for path, label in rows[::step][:n]:
    print(f"{path}\t{label}")
EOF

while IFS=$'\t' read -r path label; do
  answer=$(curl -sf -X POST "http://127.0.0.1:$port/invocations" -H 'Content-Type: application/x-image' \
           -H 'Accept: application/json;verbose' --data-binary "@$path")
  printf '%s\t%s\n' "$label" "$answer"
done <"$work/photos.tsv" >"$work/answers.tsv"

"$py" - "$work/answers.tsv" <<'EOF'
import json, sys
rows = [line.split("\t", 1) for line in open(sys.argv[1]).read().splitlines()]
answers = [(label, json.loads(body)) for label, body in rows]
right = sum(a["predicted_label"] == label for label, a in answers)
top = sum(max(a["probabilities"]) for _, a in answers)
n = len(answers)
print(json.dumps({"images": n, "accuracy": round(right / n, 4), "mean_top_probability": round(top / n, 4),
                  "gap": round(top / n - right / n, 4)}))
EOF
