#!/usr/bin/env bash
# Regenerate every icon from the one source image, icons/source.png.
#   scripts/make-icons.sh            # app icons (via `cargo tauri icon` when installed) + tray icons
#   scripts/make-icons.sh --source   # redraw icons/source.png itself first (ImageMagick)
set -euo pipefail
cd "$(dirname "$0")/.."
src=icons/source.png

if [ "${1:-}" = "--source" ]; then
  # A teal rounded square, a white test tube with a teal band, and an amber
  # "new result" dot. PNG32 keeps the alpha channel (Tauri needs RGBA).
  convert -size 1024x1024 xc:none \
    -fill '#1f6f5c' -draw 'roundrectangle 48,48 976,976 210,210' \
    -fill white -draw 'roundrectangle 392,170 632,860 120,120' \
    -fill '#1f6f5c' -draw 'roundrectangle 432,210 592,560 70,70' \
    -fill white -draw 'roundrectangle 340,150 684,240 40,40' \
    -fill '#f2a93b' -stroke white -strokewidth 28 -draw 'circle 790,250 790,365' \
    PNG32:"$src"
fi

if cargo tauri --version >/dev/null 2>&1; then
  cargo tauri icon "$src" -o icons >/dev/null 2>&1
  # Only the desktop set is used; drop the mobile folders the CLI adds.
  rm -rf icons/android icons/ios icons/Square*Logo.png icons/StoreLogo.png
else
  for s in 32 128 256; do convert "$src" -resize ${s}x${s} PNG32:icons/${s}x${s}.png; done
  cp icons/256x256.png icons/128x128@2x.png && rm icons/256x256.png
  convert "$src" -resize 512x512 PNG32:icons/icon.png
  convert "$src" -define icon:auto-resize=256,128,64,48,32,16 icons/icon.ico
fi

# Tray: plain, and a variant with a red dot for unseen results.
convert "$src" -resize 64x64 PNG32:icons/tray.png
convert "$src" -resize 64x64 -fill '#d62828' -stroke white -strokewidth 4 -draw 'circle 48,16 48,30' PNG32:icons/tray-unseen.png
echo "icons regenerated from $src"
