"""The README's picture of the live view (docs/img/live.png): a real `--live` run in tmux, its
pane captured with colours (`tmux capture-pane -e`) and drawn as a PNG with pillow.

    python benchmarks/live_screenshot.py docs/img/live.png -- run --live --backend torch_cpu --epochs 2
    python benchmarks/live_screenshot.py - --save-ansi live.ansi -- run --live ...   # capture only
    python benchmarks/live_screenshot.py docs/img/live.png --from-ansi live.ansi       # draw only

Everything after `--` is a cnnprof command line; the pane is captured once the panel has shown
steps for a few seconds (`--after S`), then the run is stopped with Ctrl-C. Capturing needs tmux,
drawing needs pillow: the two can happen on different machines.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.terminal_theme import MONOKAI
from rich.text import Text

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
BACKGROUND, FOREGROUND = tuple(MONOKAI.background_color), tuple(MONOKAI.foreground_color)
COLUMNS, ROWS = 110, 18


def capture(command: list[str], after_s: float) -> str:
    name = f"cnnprof-shot-{uuid.uuid4().hex[:8]}"
    root = Path(__file__).resolve().parents[1]
    line = f"PYTHONPATH={shlex.quote(str(root))} " + shlex.join([sys.executable, "-m", "cnnprof.cli", *command])
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(COLUMNS), "-y", "40", line + "; sleep 60"],
                   check=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            text = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout
            if re.search(r"steps\s+[1-9][\d,]* done", text):
                break
            time.sleep(0.5)
        time.sleep(after_s)
        ansi = subprocess.run(["tmux", "capture-pane", "-e", "-p", "-t", name], capture_output=True, text=True).stdout
        subprocess.run(["tmux", "send-keys", "-t", name, "C-c"], check=False)
        return ansi
    finally:
        time.sleep(1)
        subprocess.run(["tmux", "kill-session", "-t", name], check=False)


def draw(ansi: str, out: Path) -> None:
    """The panel's lines (from its top border to its bottom border) as an image."""
    from PIL import Image, ImageDraw, ImageFont

    lines = ansi.splitlines()
    top = next(i for i, s in enumerate(lines) if "cnnprof live" in s)
    bottom = next(i for i in range(top + 1, len(lines)) if "╰" in lines[i])
    console = Console(width=COLUMNS, color_system="truecolor", force_terminal=True, legacy_windows=False)
    rendered = [console.render_lines(Text.from_ansi(s), pad=False)[0] for s in lines[top : bottom + 1]]
    font, bold = ImageFont.truetype(FONT, 15), ImageFont.truetype(FONT_BOLD, 15)
    cell_w, cell_h = int(font.getlength("M")), 20
    image = Image.new("RGB", (cell_w * COLUMNS + 24, cell_h * len(rendered) + 24), BACKGROUND)
    pen = ImageDraw.Draw(image)
    for row, segments in enumerate(rendered):
        x = 12
        for seg in segments:
            style = seg.style
            color = FOREGROUND
            if style and style.color and not style.color.is_default:
                color = style.color.get_truecolor(MONOKAI)  # a dark terminal's palette
            for ch in seg.text:
                pen.text((x, 12 + row * cell_h), ch, font=bold if style and style.bold else font, fill=tuple(color))
                x += cell_w
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="the PNG to write, or - for none")
    parser.add_argument("--after", type=float, default=4.0, metavar="S", help="seconds of panel before the capture")
    parser.add_argument("--save-ansi", type=Path, metavar="FILE", help="keep the captured pane (with colours)")
    parser.add_argument("--from-ansi", type=Path, metavar="FILE", help="draw a saved capture instead of running")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)  # after it: cnnprof's own command line
    args = parser.parse_args(argv[:cut])
    ansi = args.from_ansi.read_text(encoding="utf-8") if args.from_ansi else capture(argv[cut + 1:], args.after)
    if args.save_ansi:
        args.save_ansi.write_text(ansi, encoding="utf-8")
    if args.out != "-":
        draw(ansi, Path(args.out))
        print(args.out)


if __name__ == "__main__":
    main()
