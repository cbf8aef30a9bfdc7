#!/usr/bin/env bash
# Type-check the workspace (all but the relay, a Linux server) for macOS
# (Apple silicon and Intel) on Linux,
# so every `cfg(target_os = "macos")` path is compiled on every submission.
#
# The C in dependencies (ring, SQLite) is compiled by Zig (from PyPI), which
# carries macOS's libc headers. What needs the macOS SDK cannot be done here:
# linking Apple frameworks, and notify-rust's macOS backend (an Objective-C
# file importing Cocoa), which `--cfg fsn_typecheck_only` leaves out of this
# check (crates/core/Cargo.toml); real macOS builds never set it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --macos
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

tools="$PWD/target/macos-tools"
mkdir -p "$tools"
for arch in aarch64 x86_64; do
  cat > "$tools/cc-$arch" <<WRAP
#!/usr/bin/env bash
# cc-rs passes --target=…-apple-macosx; Zig wants -target $arch-macos.
args=()
for a in "\$@"; do
  case "\$a" in --target=*|-mmacosx-version-min=*) ;; *) args+=("\$a") ;; esac
done
exec python3 -m ziglang cc -target $arch-macos "\${args[@]}"
WRAP
  chmod +x "$tools/cc-$arch"
done
printf '#!/usr/bin/env bash\nexec python3 -m ziglang ar "$@"\n' > "$tools/ar"
chmod +x "$tools/ar"

for target in aarch64-apple-darwin x86_64-apple-darwin; do
  arch=${target%%-*}
  var=$(echo "$target" | tr 'a-z-' 'A-Z_')
  env "CC_${target//-/_}=$tools/cc-$arch" "AR_${target//-/_}=$tools/ar" \
    "CARGO_TARGET_${var}_RUSTFLAGS=--cfg fsn_typecheck_only -D warnings" \
    cargo check --workspace --exclude fsn-relay --target "$target" --locked
  echo "macos: $target type-checks"
done
