import { describe, expect, it } from 'vitest';
import { expireSnapshots } from '../../../sync/iceberg/expire-snapshots.ts';
import { ancestry, type Snapshot, type TableMetadata } from '../../../sync/iceberg/metadata.ts';
import { snapshot } from './fixtures.ts';

const HOUR = 3_600_000;
const NOW = 1_800_000_000_000;

/** A chain of snapshots 1..n, one an hour, the newest at NOW; `agentOf(i)` marks who committed it. */
function chain(n: number, agentOf: (i: number) => string | undefined): TableMetadata {
  const snapshots: Snapshot[] = [];
  for (let i = 1; i <= n; i++) {
    const s = snapshot(BigInt(i), i, i === 1 ? null : BigInt(i - 1), NOW - (n - i) * HOUR);
    const agent = agentOf(i);
    if (agent) s.summary['lakeside.agent-id'] = agent;
    snapshots.push(s);
  }
  return {
    'format-version': 2,
    'table-uuid': '00000000-0000-4000-8000-000000000000',
    location: 'file:///t',
    'last-sequence-number': n,
    'last-updated-ms': NOW,
    'last-column-id': 1,
    schemas: [],
    'current-schema-id': 0,
    'partition-specs': [],
    'default-spec-id': 0,
    'last-partition-id': 999,
    'current-snapshot-id': BigInt(n),
    refs: { main: { 'snapshot-id': BigInt(n), type: 'branch' }, audit: { 'snapshot-id': 2n, type: 'tag' } },
    snapshots,
    'snapshot-log': snapshots.map((s) => ({ 'snapshot-id': s['snapshot-id'], 'timestamp-ms': s['timestamp-ms'] })),
  } as unknown as TableMetadata;
}

const ids = (m: TableMetadata) => (m.snapshots ?? []).map((s) => Number(s['snapshot-id']));

describe('expireSnapshots', () => {
  it('keeps ref heads, the newest N, the young ones and each agent’s newest; drops the rest and their log entries', () => {
    // 20 hourly snapshots; agent "a" committed 1..18 and 20, agent "b" only 5.
    const m = chain(20, (i) => (i === 5 ? 'b' : 'a'));
    const expired = expireSnapshots(m, { maxAgeMs: 3.5 * HOUR, minToKeep: 2 }, NOW);
    // 17..20: younger than 3.5 h (19, 20 also the newest two); 2: the tag; 5: agent b's newest.
    expect(ids(expired)).toEqual([2, 5, 17, 18, 19, 20]);
    expect(expired['snapshot-log']!.map((e) => Number(e['snapshot-id']))).toEqual([2, 5, 17, 18, 19, 20]);
    // The ancestry of main ends where a parent was expired; main's head is untouched.
    expect([...ancestry(expired)].map((s) => Number(s['snapshot-id']))).toEqual([20, 19, 18, 17]);
    expect(expired['current-snapshot-id']).toBe(20n);
    expect(m.snapshots).toHaveLength(20); // the input is not changed
  });

  it('returns the metadata as it is when nothing is old enough or there are few snapshots', () => {
    const m = chain(5, () => 'a');
    expect(expireSnapshots(m, { maxAgeMs: 10 * HOUR, minToKeep: 1 }, NOW)).toBe(m);
    expect(expireSnapshots(m, { maxAgeMs: 1, minToKeep: 5 }, NOW)).toBe(m);
  });
});
