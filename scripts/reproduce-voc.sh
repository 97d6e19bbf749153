#!/usr/bin/env bash
# The paper's PASCAL VOC experiment, end to end: train on VOC2007 + VOC2012 trainval from an
# ImageNet backbone with the model preset's recipe (SSD300 and SSD512: the paper's; SSDLite320:
# lufficc's VOC schedule), checkpoints as it goes (a rerun resumes from the newest), then the
# VOC07 test evaluation, and a results table in markdown with the wall time and images/s.
#
#   bash scripts/reproduce-voc.sh VOCDEVKIT [--backend tch|cuda|wgpu|flex] \
#       [--model ssd300|ssd512|ssdlite320|ssd300-resnet50|FILE.json] --pretrained FILE \
#       [--results DIR] [-- MORE SSD TRAIN FLAGS]
#   bash scripts/reproduce-voc.sh --dry-run
#
# VOCDEVKIT holds VOC2007/ (trainval and test) and VOC2012/ (trainval), as the devkit unpacks
# them. --pretrained is the ImageNet backbone (nothing is downloaded): amdegroot's
# vgg16_reducedfc.pth or torchvision's vgg16-397923af.pth for ssd300/ssd512, torchvision's
# mobilenet_v3_large-8738ca79.pth for ssdlite320, resnet50-0676ba61.pth for ssd300-resnet50.
# Results go to DIR (default results/voc-<model>): weights/, loss/, det/ and results.md. On a
# GPU use --backend tch or cuda, built in: `cargo build --release -p ssd-cli --features tch`
# (or cuda; see the README's Install). SSD_BIN overrides the binary (default
# target/release/ssd, built if missing).
#
# --dry-run runs the whole script here in minutes: a synthetic dataset in the devkit's layout
# (VOC2007 with trainval and test, VOC2012 with trainval; five shape classes named by each root's
# classes.txt), the reduced SSD300 (tests/fixtures/reduced_ssd300.json) from the reduced
# vgg16_reducedfc.pth fixture of the PyTorch parity tests, a 60-iteration schedule, interrupted
# at 30 and resumed, on Flex, with a debug build.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '7,10p' "$0" >&2
  exit 2
}

if [ "${1:-}" = --dry-run ]; then
  SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
  DRY=${DRY_DIR:-$SSD_CACHE/reproduce-voc-dry-run}
  if [ -z "${SSD_BIN:-}" ]; then
    cargo build --quiet -p ssd-cli
    export SSD_BIN=${CARGO_TARGET_DIR:-target}/debug/ssd
  fi
  rm -rf "$DRY"
  "$SSD_BIN" synthetic "$DRY/VOCdevkit/VOC2007" --train-images 48 --test-images 32 --seed 1
  "$SSD_BIN" synthetic "$DRY/VOCdevkit/VOC2012" --train-images 48 --test-images 0 --seed 2
  ARGS=("$DRY/VOCdevkit" --backend flex --model tests/fixtures/reduced_ssd300.json
    --pretrained crates/ssd-model/tests/fixtures/amdegroot_reduced/reducedfc.pth
    --results "$DRY/results" --
    --batch-size 4 --lr-decay 40,50 --warmup 10 --save-every 10 --log-every 10 --workers 2)
  # Interrupted after 30 of the 60 iterations (as a killed job would be), then run again:
  # the second run resumes from the newest checkpoint.
  bash "$0" "${ARGS[@]}" --iterations 30 --no-eval
  bash "$0" "${ARGS[@]}" --iterations 60
  grep -q '^| ' "$DRY/results/results.md"
  grep -q "resumed from .*_30" "$DRY/results/train.log"
  # Run again after the end: nothing to train, the evaluation again.
  bash "$0" "${ARGS[@]}" --iterations 60 >/dev/null
  [ "$(grep -c '^| reduced_ssd300 ' "$DRY/results/results.md")" = 1 ]
  echo "dry run passed: $DRY/results/results.md"
  exit 0
fi

[ $# -ge 1 ] || usage
VOC=$1
shift
BACKEND=
MODEL=ssd300
PRETRAINED=
RESULTS=
EXTRA=()
EVAL=1
while [ $# -gt 0 ]; do
  case $1 in
    --backend) BACKEND=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --pretrained) PRETRAINED=$2; shift 2 ;;
    --results) RESULTS=$2; shift 2 ;;
    --) shift
      while [ $# -gt 0 ]; do
        if [ "$1" = --no-eval ]; then EVAL=0; else EXTRA+=("$1"); fi
        shift
      done ;;
    *) echo "reproduce-voc: unknown argument $1" >&2; usage ;;
  esac
done
for split in VOC2007/ImageSets/Main/trainval.txt VOC2007/ImageSets/Main/test.txt \
  VOC2012/ImageSets/Main/trainval.txt; do
  if [ ! -f "$VOC/$split" ]; then
    echo "reproduce-voc: $VOC/$split is missing: VOCDEVKIT must hold VOC2007 (trainval, test) and VOC2012 (trainval)" >&2
    exit 1
  fi
done
if [ -z "$PRETRAINED" ] || [ ! -f "$PRETRAINED" ]; then
  echo "reproduce-voc: --pretrained FILE (the ImageNet backbone) is required and must exist${PRETRAINED:+: $PRETRAINED}" >&2
  exit 1
fi
NAME=$(basename "$MODEL" .json)
RESULTS=${RESULTS:-results/voc-$NAME}
if [ -z "${SSD_BIN:-}" ]; then
  SSD_BIN=target/release/ssd
  [ -x "$SSD_BIN" ] || cargo build --release -p ssd-cli
fi
mkdir -p "$RESULTS"
BACKEND_FLAG=()
[ -n "$BACKEND" ] && BACKEND_FLAG=(--backend "$BACKEND")

# The newest complete checkpoint folder of this run (`<name>_<iteration>`), if any.
newest_checkpoint() {
  [ -d "$RESULTS/weights" ] || return 0
  find "$RESULTS/weights" -maxdepth 1 -type d -name "${NAME}_*" |
    sed -n "s|.*/${NAME}_\([0-9]*\)$|\1 &|p" | sort -n | tail -n 1 | cut -d' ' -f2-
}

# A rerun continues from the newest checkpoint.
RESUME=()
LAST=$(newest_checkpoint)
if [ -n "$LAST" ]; then
  RESUME=(--resume "$LAST")
  echo "resuming from $LAST"
fi

start=$(date +%s)
TRAIN=("$SSD_BIN" train --dataroot "$VOC/VOC2007,$VOC/VOC2012" --datanames trainval
  --model "$MODEL" --pretrained-model "$PRETRAINED" --results "$RESULTS"
  --model-save-name "$NAME" "${BACKEND_FLAG[@]}" "${RESUME[@]}" "${EXTRA[@]}")
if [ ${#RESUME[@]} -gt 0 ]; then
  # A resumed run takes its network, data and backbone from the checkpoint.
  TRAIN=("$SSD_BIN" train --resume "$LAST" --results "$RESULTS" "${BACKEND_FLAG[@]}" "${EXTRA[@]}")
fi
echo "${TRAIN[*]}"
# A rerun after the last iteration only evaluates (`ssd train` says there is nothing to do).
if "${TRAIN[@]}" 2>&1 | tee -a "$RESULTS/train.log"; then
  echo $(($(date +%s) - start)) >>"$RESULTS/train-seconds"
else
  tail -n 1 "$RESULTS/train.log" | grep -q "nothing to do" || exit 1
fi
[ "$EVAL" = 1 ] || exit 0

TRAINED=$RESULTS/weights/$NAME.bpk
"$SSD_BIN" eval --trained-model "$TRAINED" --dataroot "$VOC/VOC2007" --datanames test \
  --detections "$RESULTS/det" --overwrite "${BACKEND_FLAG[@]}" | tee "$RESULTS/eval.txt"
MAP=$("$SSD_BIN" eval --dataroot "$VOC/VOC2007" --datanames test --detections "$RESULTS/det" \
  --json | sed -n 's/.*"map":\([-0-9.e]*\).*/\1/p')

# Iterations and batch from the final checkpoint's settings; time summed over the runs.
STATE=$(newest_checkpoint)/train.json
read -r ITERATIONS BATCH < <(sed -n 's/^  "iteration": \([0-9]*\).*/\1/p; s/^    "batch-size": \([0-9]*\).*/\1/p' "$STATE" | paste -sd' ')
TOTAL=$(awk '{ s += $1 } END { print (s > 0 ? s : 1) }' "$RESULTS/train-seconds")
case $NAME in
  ssd300) PAPER=77.2 ;;
  ssd512) PAPER=79.8 ;;
  ssdlite320) PAPER="69.3 (lufficc)" ;;
  *) PAPER=- ;;
esac
{
  echo "| network | data | backend | iterations x batch | VOC07 test mAP | reference | training time | images/s |"
  echo "|---|---|---|---|---|---|---|---|"
  awk -v name="$NAME" -v backend="${BACKEND:-default}" -v it="$ITERATIONS" -v batch="$BATCH" \
    -v map="$MAP" -v paper="$PAPER" -v t="$TOTAL" 'BEGIN {
      printf "| %s | VOC07+12 trainval | %s | %d x %d | %.1f | %s | %dh %02dm | %.1f |\n",
        name, backend, it, batch, map * 100, paper, int(t / 3600), int(t % 3600 / 60), it * batch / t }'
} | tee "$RESULTS/results.md"
