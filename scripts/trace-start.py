#!/usr/bin/python3
"""Where the time goes between a click on the app's icon and the window's
first paint, with the agent already running (the release build).

Starts the app once (the agent, then its window), closes the window, then
starts `fullscript-notifier` again under `strace -f -ttt` (and the running
agent traced too) and prints, from that start: each process started
(execve), when the window process first connected to the agent's endpoint,
and when the window first painted (more than one colour, as
scripts/perf-report.py measures it). strace slows each step a little; the
proportions are what matter.

Usage: scripts/trace-start.py [runs]      (after a release build: scripts/run.sh builds one)
"""
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("perf", ROOT / "scripts/perf-report.py")
perf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(perf)

APP = ROOT / "target/release/fullscript-notifier"
TITLE = "Fullscript Lab Notifier"


def events(path, t0):
    out = []
    for line in Path(path).read_text(errors="replace").splitlines():
        m = re.match(r"(\d+)\s+(\d+\.\d+)\s+(.*)", line)
        if not m:
            continue
        pid, t, call = int(m.group(1)), float(m.group(2)), m.group(3)
        if call.startswith("execve(") and "= 0" in call:
            prog = re.search(r'execve\("([^"]+)", \[([^\]]*)\]', call)
            if prog:
                args = prog.group(2).replace('"', "")
                out.append((t - t0, pid, f"exec {Path(prog.group(1)).name} [{args}]"))
        elif call.startswith("connect(") and "agent.sock" in call:
            out.append((t - t0, pid, "connects to agent.sock" + (" (refused)" if "= -1" in call else "")))
    return out


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if not APP.exists():
        sys.exit("build the release binaries first (scripts/run.sh, or cargo build --release ...)")
    work = Path(tempfile.mkdtemp(prefix="fsn-trace-"))
    disp = perf.Display()
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"], stdout=subprocess.PIPE)
    env = dict(os.environ, DISPLAY=disp.name, DBUS_SESSION_BUS_ADDRESS=bus.stdout.readline().decode().strip(),
               NO_AT_BRIDGE="1", HOME=str(work), XDG_CONFIG_HOME=str(work / "config"),
               XDG_DATA_HOME=str(work / "data"), XDG_RUNTIME_DIR=str(work),
               FSN_CONFIG=str(work / "config.toml"), FSN_DATA_DIR=str(work / "app-data"))
    env.pop("WAYLAND_DISPLAY", None)
    try:
        p, t, w = perf.start([str(APP)], env, disp, TITLE)
        print(f"cold start (agent and window): first paint after {t:.2f} s")
        for run in range(runs):
            disp.close(w)
            deadline = time.monotonic() + 30
            while set(perf.app_processes(work)) - {"agent"} and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1)
            agent = perf.app_processes(work).get("agent", [])
            agent_log, start_log = work / f"agent-{run}.strace", work / f"start-{run}.strace"
            tracer = subprocess.Popen(["strace", "-f", "-ttt", "-s", "256", "-e", "trace=execve,connect", "-o", str(agent_log),
                                       "-p", str(agent[0])], stderr=subprocess.DEVNULL) if agent else None
            time.sleep(0.5)
            t0 = time.time()
            p, t, w = perf.start(["strace", "-f", "-ttt", "-s", "256", "-e", "trace=execve,connect", "-o", str(start_log),
                                  str(APP)], env, disp, TITLE)
            time.sleep(0.5)
            if tracer:
                tracer.terminate()
                tracer.wait()
            print(f"\nrun {run + 1}: from the running agent, first paint after {t:.2f} s (under strace)")
            seen = events(start_log, t0) + (events(agent_log, t0) if agent else [])
            for at, pid, what in sorted(seen):
                print(f"  {at:6.3f} s  pid {pid:<7} {what}")
            print(f"  {t:6.3f} s  first paint")
    finally:
        perf.kill_app(work)
        bus.kill()
        disp.stop()


if __name__ == "__main__":
    main()
