// What bench/lang's Node programs share (the twin of _stats.py): latency
// percentiles reported the way yard-bench reports them (the upper bound of
// the common/yard_hist.c bucket holding the rank, clamped to [min, max]),
// and CPU time of a process from /proc.

import { readFileSync } from 'node:fs';

const SUB = 16;
const HZ = 100; // USER_HZ: what /proc/PID/stat counts in on Linux

function upper(value) {
  if (value < SUB) return value;
  const widthBits = Math.floor(Math.log2(value)) - 4;
  const width = 2 ** widthBits;
  return Math.floor(value / width) * width + width - 1;
}

/** yard_hist_percentile of `ordered` (sorted ascending, integer us). */
export function percentile(ordered, p) {
  const n = ordered.length;
  if (n === 0) return 0;
  const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n)));
  return Math.max(ordered[0], Math.min(ordered[n - 1], upper(ordered[rank - 1])));
}

/** utime + stime of a process in seconds (0 if it is gone). */
export function procCpuS(pid) {
  let data;
  try {
    data = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return 0;
  }
  const fields = data.slice(data.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / HZ;
}

/** CPU of this process and of others (broker, workers) over a window, in % of one core. */
export class CpuWindow {
  constructor(brokerPid = 0, workerPids = []) {
    this.brokerPid = brokerPid;
    this.workerPids = workerPids;
    this.start = null;
    this.result = null;
  }

  #sample() {
    const own = process.cpuUsage();
    return {
      wall: performance.now() / 1000,
      self: (own.user + own.system) / 1e6,
      broker: this.brokerPid ? procCpuS(this.brokerPid) : 0,
      workers: this.workerPids.reduce((sum, pid) => sum + procCpuS(pid), 0),
    };
  }

  open() {
    this.start = this.#sample();
  }

  close() {
    if (!this.start || this.result) return;
    const end = this.#sample();
    const wall = end.wall - this.start.wall;
    const pct = (key) => (wall > 0 ? (100 * (end[key] - this.start[key])) / wall : 0);
    this.result = {
      client: pct('self'),
      broker: this.brokerPid ? pct('broker') : null,
      workers: this.workerPids.length ? pct('workers') : null,
    };
  }
}
