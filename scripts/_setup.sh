# Sourced by scripts/demo and scripts/test: create .venv if missing and install what is needed.
# Idempotent: a second run only checks. Usage: setup_env [dev]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TORCH_VERSION="${PARIS_TORCH_VERSION:-2.13.0}"

say() { printf '[setup] %s\n' "$*"; }

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
  local stamp="$VENV/.paris-setup-$extras"
  if [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/pyproject.toml" ] && python -c "import paris_node, torch, hivemind" 2>/dev/null; then
    say "virtualenv up to date ($VENV)"
    return
  fi
  say "upgrading pip"
  python -m pip install -q --upgrade pip
  # torch first, pinned: an unpinned torch (directly or via diffusers/hivemind) pulls a multi-GB CUDA build.
  if ! python -c "import torch" 2>/dev/null; then
    say "installing torch==$TORCH_VERSION"
    python -m pip install -q "torch==$TORCH_VERSION"
  fi
  local spec="$ROOT"
  [ -n "$extras" ] && spec="$ROOT[$extras]"
  say "installing paris-node${extras:+ [$extras]} (editable)"
  python -m pip install -q -e "$spec"
  touch "$stamp"
}
