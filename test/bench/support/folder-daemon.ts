/**
 * The daemon as the camera-folder benchmark runs it: a child process (so its RSS and CPU
 * are its own, apart from the dropper's), reporting to the parent over IPC: the folder
 * source's counters, the landing log's commits, its CPU time and its peak RSS (sampled
 * every 100 ms) since the last `measure`.
 *
 *   node test/bench/support/folder-daemon.ts <config.yaml>
 */
import { loadConfigFile } from '../../../config/loader.ts';
import { Daemon } from '../../../agent/daemon.ts';
import { createLogger } from '../../../agent/log.ts';

const [configPath] = process.argv.slice(2) as [string];
const loaded = await loadConfigFile(configPath);
const daemon = new Daemon(loaded, createLogger('warn'));
await daemon.start();
let peakRss = process.memoryUsage.rss();
const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 100);

function stats() {
  const folder = { ingested: 0, refused: 0, duplicates: 0, retried: 0 };
  for (const source of daemon.sources) {
    if (!('ingested' in source.stats)) continue;
    for (const key of Object.keys(folder) as (keyof typeof folder)[]) folder[key] += source.stats[key];
  }
  const cpu = process.cpuUsage();
  const { rowsInserted: rows, commits, commitMs } = daemon.landing.stats;
  return { type: 'stats', ...folder, rows, commits, commitMs, cpuMs: (cpu.user + cpu.system) / 1000, rss: process.memoryUsage.rss(), peakRss };
}

process.on('message', (message: { type: string }) => {
  if (message.type === 'stats') {
    process.send!(stats());
  } else if (message.type === 'measure') {
    peakRss = process.memoryUsage.rss();
    process.send!(stats());
  } else if (message.type === 'stop') {
    clearInterval(rssTimer);
    void daemon.stop().then(() => process.send!({ type: 'stopped' }, () => process.exit(0)));
  }
});
process.send!({ type: 'ready' });
