# Sourced by scripts/demo and scripts/test: create .venv if missing and install what is needed.
# Idempotent: a second run only checks. Usage: setup_env [dev]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TORCH_VERSION="${PARIS_TORCH_VERSION:-2.13.0}"

say() { printf '[setup] %s\n' "$*"; }
# `took SECONDS_AT_START`: how long the step that started then took (so a slow step is visible, not silence)
took() { say "  done in $(( $(date +%s) - $1 )) s"; }

setup_env() {
  local extras="${1:-}"
  if ! command -v python3 >/dev/null; then
    say "python3 not found: install Python 3.10+ (apt-get install python3 python3-venv)"; exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    python3 -m venv "$VENV"
  fi
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  # The emoji dataset renders Debian's Noto Color Emoji font; install it when we can (root, apt).
  if [ ! -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing fonts-noto-color-emoji (apt-get)"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-color-emoji) >/dev/null \
        || say "could not install fonts-noto-color-emoji; the emoji dataset will be unavailable"
    else
      say "fonts-noto-color-emoji missing: run 'sudo apt-get install fonts-noto-color-emoji' for the emoji dataset"
    fi
  fi
  # The dashboard's browser test drives Debian's chromium (no browser download at test time): dev extras only.
  if [ "$extras" = dev ] && ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing chromium + chromium-driver (apt-get) for the dashboard browser test"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null \
        || say "could not install chromium; the dashboard browser test will be skipped"
    else
      say "chromium missing: run 'sudo apt-get install chromium chromium-driver' for the dashboard browser test"
    fi
  fi
  local stamp="$VENV/.paris-setup-$extras"
  if [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/pyproject.toml" ] && python -c "import paris_node, torch, hivemind" 2>/dev/null; then
    say "virtualenv up to date ($VENV)"
    return
  fi
  if [ -f "$stamp" ]; then
    say "updating $VENV (pyproject.toml changed): usually under a minute"
  else
    say "first-time set-up of $VENV: pip, torch $TORCH_VERSION, then paris-node and its dependencies (hivemind"
    say "with its p2pd binary, safetensors, numpy, pillow, click, tqdm${extras:+, dev tools: pytest, ruff, ...})."
    say "This usually takes 2-10 minutes (the torch wheel is most of it); later runs only check, in seconds."
  fi
  local t
  t=$(date +%s); say "upgrading pip"
  python -m pip install -q --upgrade pip
  took "$t"
  # torch first, pinned: an unpinned torch (directly or via diffusers/hivemind) pulls a multi-GB CUDA build.
  if ! python -c "import torch" 2>/dev/null; then
    t=$(date +%s); say "installing torch==$TORCH_VERSION (a large download: usually the longest step)"
    python -m pip install -q "torch==$TORCH_VERSION"
    took "$t"
  fi
  local spec="$ROOT"
  [ -n "$extras" ] && spec="$ROOT[$extras]"
  t=$(date +%s); say "installing paris-node${extras:+ [$extras]} (editable) and its dependencies (usually 1-3 minutes)"
  python -m pip install -q -e "$spec"
  took "$t"
  touch "$stamp"
}
