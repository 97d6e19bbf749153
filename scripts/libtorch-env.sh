# Source this (bash) to build and run with `--features tch` against scripts/install-libtorch.sh's
# libtorch: points torch-sys at it (no download) and puts it on the library path.
SSD_CACHE=${SSD_CACHE:-$HOME/.cache/ssd}
export LIBTORCH="$SSD_CACHE/libtorch-cpu"
export LIBTORCH_CXX11_ABI=1
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
