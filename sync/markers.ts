/**
 * lakeside's commit markers in Iceberg snapshot summaries, and what they prove.
 *
 * Every snapshot lakeside commits carries:
 *   lakeside.agent-id    the agent's id (unique per agent in the fleet)
 *   lakeside.plant       the plant
 *   lakeside.commit-seq  the agent's commit sequence (decimal; only goes up, never reset)
 *   lakeside.instance    the committing state directory's identity (the fence)
 *
 * - Applied? In one table an agent's seqs appear in increasing order (outbox.ts), so a
 *   commit with seq S is in the table iff the NEWEST snapshot of this agent in the
 *   ancestry of `main` has a seq >= S. Only the newest is needed: older snapshots of
 *   ours may have been expired by the centre without losing the proof.
 * - Fence: if the newest snapshot of this agent id in the ancestry carries another
 *   instance, another state directory commits as this agent: this one must not (its
 *   seqs could collide and double-commit). The first instance to commit keeps the
 *   table; the operator hands it over explicitly (`catalog.take_over_from`).
 */
import { ancestry, type Snapshot, type TableMetadata } from './iceberg/metadata.ts';

export const MARKER = {
  agentId: 'lakeside.agent-id',
  plant: 'lakeside.plant',
  seq: 'lakeside.commit-seq',
  instance: 'lakeside.instance',
} as const;

export interface AgentIdentity {
  agentId: string;
  plant: string;
  instanceId: string;
}

export interface NewestMarker {
  seq: number;
  instanceId: string;
  snapshot: Snapshot;
}

export function markerSummary(identity: AgentIdentity, seq: number): Record<string, string> {
  return { [MARKER.agentId]: identity.agentId, [MARKER.plant]: identity.plant, [MARKER.seq]: String(seq), [MARKER.instance]: identity.instanceId };
}

/** The newest snapshot of `agentId` in the ancestry of main, or null if none is left. */
export function newestMarker(metadata: TableMetadata, agentId: string): NewestMarker | null {
  for (const snapshot of ancestry(metadata)) {
    if (snapshot.summary[MARKER.agentId] !== agentId) continue;
    const seq = Number(snapshot.summary[MARKER.seq]);
    if (!Number.isSafeInteger(seq)) continue;
    return { seq, instanceId: snapshot.summary[MARKER.instance] ?? '', snapshot };
  }
  return null;
}

/** Whether the commit `seq` of this agent is in the table (see the header). */
export function isApplied(metadata: TableMetadata, agentId: string, seq: number): boolean {
  const newest = newestMarker(metadata, agentId);
  return newest !== null && newest.seq >= seq;
}

/** Null when this instance may commit; else the instance that holds the agent id in this table. */
export function fencedBy(metadata: TableMetadata, identity: AgentIdentity, takeOverFrom: string | null): string | null {
  const newest = newestMarker(metadata, identity.agentId);
  if (newest === null || newest.instanceId === identity.instanceId) return null;
  if (takeOverFrom !== null && newest.instanceId === takeOverFrom) return null;
  return newest.instanceId;
}
