#!/usr/bin/env bash
# `ssd track` speed on a 640x360 H.264 video (the synthetic video, 250 frames at 25 frames/s):
# whole-run frames/s and the busy time of each stage (FFmpeg decoding and resizing, the network
# with post-processing, ByteTrack, drawing and H.264 encoding), for the small preset (the
# quickstart model when QS_MODEL names it, else random weights), SSDLite320 and SSD300 (random
# weights: a forward costs the same), at --batch-size 8, one after the other.
#
#   bash benches/peers/track-speed.sh [DIR]
#
# SSD_BIN: an `ssd` binary to use instead of building the release one (with the random_weights
# example of ssd-model built beside it, in its examples/ folder). Needs FFmpeg
# (scripts/install-video-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
DIR=${1:-$SSD_CACHE/bench-track}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SSD_CACHE/target/release}
if [ -z "${SSD_BIN:-}" ]; then
  cargo build --release -p ssd-cli -p ssd-model --bin ssd --example random_weights
  SSD_BIN=$CARGO_TARGET_DIR/release/ssd
fi
# The random_weights example built beside the binary.
RANDOM_WEIGHTS=$(dirname "$SSD_BIN")/examples/random_weights
mkdir -p "$DIR"
for m in small ssdlite320 ssd300; do
  [ -f "$DIR/$m.bpk" ] || "$RANDOM_WEIGHTS" "$m" "$DIR/$m.bpk"
done
[ -f "$DIR/seq/video.mp4" ] || "$SSD_BIN" synthetic "$DIR/seq" --video --mp4 --frames 250 >/dev/null
SMALL=${QS_MODEL:-$DIR/small.bpk}
for model in "$SMALL" "$DIR/ssdlite320.bpk" "$DIR/ssd300.bpk"; do
  echo "== $(basename "$model")"
  "$SSD_BIN" track --trained-model "$model" --video "$DIR/seq/video.mp4" --batch-size 8 \
    --output "$DIR/tracked.mp4" --mot "$DIR/tracks.txt" --overwrite 2>&1 | grep -E 'frames in'
done
