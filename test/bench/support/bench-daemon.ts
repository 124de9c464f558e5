/**
 * The daemon as the MQTT benchmark runs it: a child process (so its RSS and CPU are its
 * own) with a hook that records publish → PUBACK latency from the `ts` (ms) each
 * benchmark payload carries. Reports to the parent over IPC ('ready' carries the API's
 * URL; 'stats' the process's CPU time; 'report' the event loop's delay while measuring).
 *
 *   node test/bench/support/bench-daemon.ts <config.yaml> <after_commit|on_receipt>
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadConfigFile } from '../../../config/loader.ts';
import { Daemon } from '../../../agent/daemon.ts';
import { createLogger } from '../../../agent/log.ts';

const [configPath, mode] = process.argv.slice(2) as [string, 'after_commit' | 'on_receipt'];
const loaded = await loadConfigFile(configPath);
const logger = createLogger('warn');
const latencies = new Float64Array(2_000_000);
let count = 0;
let measuring = false;
let peakRss = 0;

const loopDelay = monitorEventLoopDelay({ resolution: 1 });
const tsPattern = /"ts":(\d+)/;
const daemon = new Daemon(loaded, logger, {
  mqttAckMode: mode,
  onMqttAck: (packet) => {
    if (!measuring || count >= latencies.length) return;
    const match = tsPattern.exec(packet.payload.toString());
    if (match) latencies[count++] = Date.now() - Number(match[1]);
  },
});
await daemon.start();
const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 100);

function acked(): number {
  return daemon.sources.reduce((sum, source) => sum + ('acked' in source.stats ? source.stats.acked : 0), 0);
}

process.on('message', (message: { type: string }) => {
  if (message.type === 'stats') {
    process.send!({ type: 'stats', acked: acked(), rows: daemon.landing.stats.rowsInserted, commits: daemon.landing.stats.commits, commitMs: daemon.landing.stats.commitMs, rss: process.memoryUsage.rss(), cpu: process.cpuUsage() });
  } else if (message.type === 'measure') {
    count = 0;
    measuring = true;
    peakRss = process.memoryUsage.rss();
    loopDelay.reset();
    loopDelay.enable();
    process.send!({ type: 'measure-ack' });
  } else if (message.type === 'report') {
    measuring = false;
    const sorted = latencies.slice(0, count).sort();
    const at = (q: number) => (count === 0 ? NaN : sorted[Math.min(count - 1, Math.floor(q * count))]!);
    const memory = process.memoryUsage();
    if (process.env.BENCH_MEMORY) console.error(JSON.stringify({ memory, heap: process.resourceUsage().maxRSS }));
    loopDelay.disable();
    const loop = { loopDelayP50Ms: loopDelay.percentile(50) / 1e6, loopDelayP99Ms: loopDelay.percentile(99) / 1e6, loopDelayMaxMs: loopDelay.max / 1e6 };
    process.send!({ type: 'report', samples: count, p50: at(0.5), p99: at(0.99), max: at(1), peakRss, ...loop });
  } else if (message.type === 'stop') {
    clearInterval(rssTimer);
    void daemon.stop().then(() => process.send!({ type: 'stopped' }, () => process.exit(0)));
  }
});
process.send!({ type: 'ready', apiUrl: daemon.reads.url });
