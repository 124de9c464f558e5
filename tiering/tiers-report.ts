/**
 * What `lakeside tiers` shows, computed from the tier map alone (read-only, so it can
 * run beside a live daemon): per dataset (blobs as `(blobs)`), files and bytes per
 * tier, the oldest event time not yet committed, the upload backlog, the recent upload
 * rate (bytes uploaded in the last `rateWindowMinutes`) and the drain estimate at that
 * rate; set-aside files with their reason.
 */
import type Database from 'better-sqlite3';

export interface DatasetTiers {
  dataset: string;
  /** Files still on local disk (any state). */
  local: { files: number; bytes: number };
  /** Uploaded, waiting for the catalog. */
  uploaded: { files: number; bytes: number };
  committed: { files: number; bytes: number };
  archived: { files: number; bytes: number };
  expired: { files: number; bytes: number };
  dropped: { files: number; bytes: number };
  evicted: { files: number; bytes: number };
  backlog: { files: number; bytes: number };
  setAside: number;
  oldestUncommittedUs: number | null;
}

export interface TiersReport {
  datasets: DatasetTiers[];
  backlogBytes: number;
  rateBytesPerSecond: number;
  /** Seconds to drain the backlog at the recent rate; null when nothing moves. */
  drainSeconds: number | null;
  setAside: { dataset: string; path: string; attempts: number; reason: string | null }[];
}

const empty = () => ({ files: 0, bytes: 0 });

export function tiersReport(db: Database.Database, nowUs: number, rateWindowMinutes = 10): TiersReport {
  const has = db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'tier_files'`).get();
  if (!has) return { datasets: [], backlogBytes: 0, rateBytesPerSecond: 0, drainSeconds: null, setAside: [] };
  const rows = db
    .prepare(
      `SELECT coalesce(dataset, '(blobs)') AS dataset, state, local_state, set_aside_us IS NOT NULL AS aside,
         count(*) AS files, coalesce(sum(size_bytes), 0) AS bytes, min(event_time_us) AS oldest
       FROM tier_files GROUP BY 1, 2, 3, 4`,
    )
    .all() as { dataset: string; state: string; local_state: string; aside: number; files: number; bytes: number; oldest: number }[];
  const byDataset = new Map<string, DatasetTiers>();
  for (const r of rows) {
    let d = byDataset.get(r.dataset);
    if (!d) {
      d = { dataset: r.dataset, local: empty(), uploaded: empty(), committed: empty(), archived: empty(), expired: empty(), dropped: empty(), evicted: empty(), backlog: empty(), setAside: 0, oldestUncommittedUs: null };
      byDataset.set(r.dataset, d);
    }
    const add = (into: { files: number; bytes: number }) => {
      into.files += r.files;
      into.bytes += r.bytes;
    };
    if (r.local_state === 'present') add(d.local);
    else add(d.evicted);
    if (r.state === 'uploaded' || r.state === 'committed' || r.state === 'archived' || r.state === 'expired' || r.state === 'dropped') add(d[r.state]);
    if (r.state === 'local' || r.state === 'uploaded') d.oldestUncommittedUs = Math.min(d.oldestUncommittedUs ?? Infinity, r.oldest);
    if (r.state === 'local' && r.local_state === 'present') {
      if (r.aside) d.setAside += r.files;
      else add(d.backlog);
    }
  }
  const since = nowUs - rateWindowMinutes * 60_000_000;
  const recent = db.prepare(`SELECT coalesce(sum(size_bytes), 0) AS bytes, min(uploaded_us) AS first FROM tier_files WHERE uploaded_us >= ?`).get(since) as { bytes: number; first: number | null };
  const spanSeconds = recent.first === null ? 0 : Math.max(1, (nowUs - Math.max(since, recent.first)) / 1e6);
  const rate = spanSeconds > 0 ? recent.bytes / spanSeconds : 0;
  const datasets = [...byDataset.values()].sort((a, b) => a.dataset.localeCompare(b.dataset));
  const backlogBytes = datasets.reduce((n, d) => n + d.backlog.bytes, 0);
  const setAside = (
    db.prepare(`SELECT coalesce(dataset, '(blobs)') AS dataset, local_path AS path, attempts, last_error AS reason FROM tier_files WHERE set_aside_us IS NOT NULL AND state = 'local' ORDER BY id LIMIT 50`).all() as TiersReport['setAside']
  );
  return { datasets, backlogBytes, rateBytesPerSecond: rate, drainSeconds: backlogBytes === 0 ? 0 : rate > 0 ? backlogBytes / rate : null, setAside };
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number | null): string {
  if (seconds === null) return 'unknown (no upload in the last minutes)';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} days`;
}

/** `[#####.....] 50 %`, `width` characters between the brackets. */
export function progressBar(done: number, total: number, width = 30): string {
  const fraction = total <= 0 ? 1 : Math.min(1, Math.max(0, done / total));
  const filled = Math.round(fraction * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.floor(fraction * 100)} %`;
}
