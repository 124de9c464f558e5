/**
 * An L1 file with real stats (time, line, value), registered in a tiering fixture's tier
 * map as uploaded under this agent's data key: what tiering hands the committer.
 */
import { dataKey } from '../../../tiering/layout.ts';
import type { TierRecord } from '../../../tiering/tier-map.ts';
import type { TieringFixture } from '../tiering/fixture.ts';

export function uploadedFile(on: TieringFixture, options: { dataset?: string; agentId?: string; plant?: string } = {}): TierRecord {
  const dataset = options.dataset ?? 'inspections';
  const hot = on.addL1(dataset, { ageHours: 1 });
  const stats = {
    record_count: 10,
    value_counts: { '1': 10, '2': 10, '3': 10 },
    null_value_counts: { '1': 0, '2': 0, '3': 0 },
    nan_value_counts: { '3': 0 },
    lower_bounds: { '1': hot.min_ts_us, '2': 'l1', '3': 1.5 },
    upper_bounds: { '1': hot.max_ts_us, '2': 'l1', '3': 9.5 },
    column_sizes: { '1': 100, '2': 20, '3': 80 },
  };
  on.db.prepare('UPDATE hot_files SET stats_json = ? WHERE id = ?').run(JSON.stringify(stats), hot.id);
  const key = dataKey({ plant: options.plant ?? 'ulm', agentId: options.agentId ?? 'ulm-1' }, hot.path);
  on.map.register(
    [{ kind: 'data', dataset, local_path: hot.path, object_key: key, size_bytes: hot.file_size_bytes, sha256: 'x'.repeat(64), event_time_us: hot.max_ts_us, min_event_time_us: hot.min_ts_us }],
    on.nowMs() * 1000,
  );
  const record = on.map.byPath(hot.path)!;
  on.map.markUploaded(record.id, on.nowMs() * 1000);
  return on.map.get(record.id)!;
}
