/**
 * Snapshot expiry for the tables lakeside's file-system catalog keeps (fs-catalog.ts).
 *
 * Why: every commit rewrites the whole table metadata, which lists every snapshot. At
 * one commit per 10 s that is 8,640 snapshots a day, so without expiry each commit
 * would write a larger file than the last, forever. A REST catalog's tables are the
 * central team's to expire; this is only for the catalog lakeside itself keeps.
 *
 * Invariants (a pure function of the metadata, the policy and the time):
 * - Kept: every snapshot a ref (main, a branch or tag) points at; the newest
 *   `minToKeep`; every snapshot younger than `maxAgeMs`; and the NEWEST snapshot of
 *   each `lakeside.agent-id` marker, so an agent can always tell whether its last
 *   commit is in (markers.ts: applied iff its newest seq in the ancestry >= S).
 * - Only metadata entries go: `snapshots` and the `snapshot-log` entries of expired
 *   ids. No file is deleted (data files stay referenced by the current manifests;
 *   tiering deletes objects itself after its replace and delete commits).
 * - The ancestry of a kept snapshot simply ends where a parent was expired.
 * - Nothing to expire returns the input unchanged.
 */
import { MARKER } from '../markers.ts';
import type { SnapshotId, TableMetadata } from './metadata.ts';

export interface SnapshotExpiry {
  maxAgeMs: number;
  minToKeep: number;
}

export function expireSnapshots(metadata: TableMetadata, policy: SnapshotExpiry, nowMs: number): TableMetadata {
  const snapshots = metadata.snapshots ?? [];
  if (snapshots.length <= policy.minToKeep) return metadata;
  const keep = new Set<SnapshotId>();
  for (const ref of Object.values(metadata.refs ?? {})) keep.add(ref['snapshot-id']);
  const current = metadata['current-snapshot-id'];
  if (current !== undefined && current !== null) keep.add(current);
  const newestFirst = [...snapshots].sort((a, b) => b['sequence-number'] - a['sequence-number'] || b['timestamp-ms'] - a['timestamp-ms']);
  const agentsSeen = new Set<string>();
  newestFirst.forEach((snapshot, rank) => {
    const agent = snapshot.summary[MARKER.agentId];
    const newestOfAgent = agent !== undefined && !agentsSeen.has(agent);
    if (agent !== undefined) agentsSeen.add(agent);
    if (rank < policy.minToKeep || nowMs - snapshot['timestamp-ms'] < policy.maxAgeMs || newestOfAgent) keep.add(snapshot['snapshot-id']);
  });
  const kept = snapshots.filter((s) => keep.has(s['snapshot-id']));
  if (kept.length === snapshots.length) return metadata;
  return {
    ...metadata,
    snapshots: kept,
    'snapshot-log': (metadata['snapshot-log'] ?? []).filter((entry) => keep.has(entry['snapshot-id'])),
  };
}
