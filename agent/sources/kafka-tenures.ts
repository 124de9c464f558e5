/**
 * The Kafka source's partition tenures, and the settling of its held batches at each
 * new generation (kafka-handover.ts says what a history proves; landing/source-holds.ts
 * what keeping and dropping do).
 *
 * `settle(assignment)` runs when this member joins a generation, before any batch of
 * that generation lands, and after the batches of the generations before it are done
 * (the caller waits for them): it reads every held batch of this source, reads the
 * committed offsets, histories and low watermarks of their partitions and of the
 * assigned ones, starts (or continues) a tenure per assigned partition, whose history
 * every commit of the generation carries, and keeps or drops each held batch.
 * A batch judged never committed whose tenure this member continues (it kept the
 * partition and committed last) is neither: it stays held. This member reads the
 * partition again from the committed offset, its watermark skips the batch's records,
 * and the next commit past them releases it; so a commit whose answer was lost but that
 * the coordinator applies late cannot turn a drop into a loss.
 */
import type { HeldBatch, SettleOutcome } from '../landing/source-holds.ts';
import type { Logger } from '../log.ts';
import { formatHistory, judgeHold, parseHistory, takeOver, type HoldVerdict, type Tenure } from './kafka-handover.ts';

export interface CommittedOffsets {
  topic: string;
  /** `low`: the partition's first offset still held by Kafka (absent: unknown, nothing is dropped). */
  partitions: { partition: number; offset: string; metadata: string | null; low?: string }[];
}

export interface TenureDeps {
  source: string;
  heldBatches: (source: string) => Promise<HeldBatch[]>;
  settleHolds: (keep: string[], drop: string[]) => Promise<SettleOutcome>;
  /** The group's readers start a partition without a usable committed offset at the earliest offset (`from_beginning`). */
  fromBeginning: boolean;
  /** The group's committed offsets (with their metadata) of these topics, and their low watermarks. */
  fetchOffsets: (topics: string[]) => Promise<CommittedOffsets[]>;
  log: Logger;
}

export interface PartitionTenure {
  id: string;
  /** The commit metadata of this tenure (its partition's history). */
  metadata: string;
  history: Tenure[];
  /** A new tenure's `since` waits for the first offset actually read (`firstRead`). */
  sinceFixed: boolean;
  /** Batches of this tenure left held at the settle (offsets first..next-1): a commit inside one is carried to its end (`commitThrough`). */
  leftHeld: { first: number; next: number }[];
}

export interface SettleReport {
  kept: number;
  dropped: number;
  /** Judged never committed but left held: this member reads them again under the same tenure (see the header). */
  leftHeld: number;
  /** Kept without proof either way (at least once; logged). */
  unproven: number;
  rowsDropped: number;
}

/** Errors that mean this source cannot read a topic's offsets at all (its batches are then kept, unproven). */
const UNREADABLE_TOPIC = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'TOPIC_AUTHORIZATION_FAILED', 'GROUP_AUTHORIZATION_FAILED']);

export function streamOf(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

function topicOf(stream: string): string {
  return stream.slice(0, stream.lastIndexOf('/'));
}

export class PartitionTenures {
  private tenures = new Map<string, PartitionTenure>();
  private readonly deps: TenureDeps;

  constructor(deps: TenureDeps) {
    this.deps = deps;
  }

  /** The tenure a batch of this partition lands and commits under; undefined when not assigned here. */
  of(topic: string, partition: number): PartitionTenure | undefined {
    return this.tenures.get(streamOf(topic, partition));
  }

  /** See the header. Throws when Kafka or the landing log cannot answer (the caller retries). */
  async settle(assignment: Record<string, number[]>): Promise<SettleReport> {
    const { deps } = this;
    const held = await deps.heldBatches(deps.source);
    const assigned = Object.keys(assignment);
    const committed = new Map<string, { offset: number; history: Tenure[]; low: number }>();
    const note = (answers: CommittedOffsets[]): void => {
      for (const { topic, partitions } of answers) {
        for (const p of partitions) {
          committed.set(streamOf(topic, p.partition), { offset: Number(p.offset), history: parseHistory(p.metadata), low: p.low === undefined ? Infinity : Number(p.low) });
        }
      }
    };
    if (assigned.length > 0) note(await deps.fetchOffsets(assigned));
    // Topics only held batches name (this source no longer reads them) one by one: a
    // deleted or forbidden topic leaves its batches without proof (kept), not the whole
    // settle stuck.
    for (const topic of new Set(held.map((h) => topicOf(h.stream)))) {
      if (assigned.includes(topic)) continue;
      try {
        note(await deps.fetchOffsets([topic]));
      } catch (error) {
        if (!UNREADABLE_TOPIC.has(String((error as { type?: unknown }).type))) throw error;
      }
    }
    const tenures = new Map<string, PartitionTenure>();
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) {
        const stream = streamOf(topic, partition);
        const at = committed.get(stream) ?? { offset: -1, history: [], low: Infinity };
        const history = takeOver(at.history, at.offset, this.tenures.get(stream)?.id);
        const continued = history.at(-1)!.id === this.tenures.get(stream)?.id;
        tenures.set(stream, { id: history.at(-1)!.id, metadata: formatHistory(history), history, sinceFixed: continued, leftHeld: [] });
      }
    }
    const report: SettleReport = { kept: 0, dropped: 0, leftHeld: 0, unproven: 0, rowsDropped: 0 };
    const keep: string[] = [];
    const drop: string[] = [];
    for (const hold of held) {
      const at = committed.get(hold.stream);
      const verdict: HoldVerdict = at ? judgeHold(hold, at.history, at.offset, at.low, deps.fromBeginning) : 'unknown';
      const fields = { stream: hold.stream, first_offset: hold.firstOffset, next_offset: hold.nextOffset, committed_offset: at?.offset ?? null };
      const continued = tenures.get(hold.stream);
      if (verdict === 'drop' && continued?.id === hold.tenure) {
        continued.leftHeld.push({ first: hold.firstOffset, next: hold.nextOffset });
        report.leftHeld++;
      } else if (verdict === 'drop') {
        drop.push(hold.hold);
        deps.log.info(fields, 'held batch was never committed to Kafka; dropped, the partition’s reader lands it again');
      } else {
        keep.push(hold.hold);
        if (verdict === 'unknown') {
          report.unproven++;
          deps.log.warn(fields, 'held batch: the partition’s commit history cannot tell whether it was committed; kept (it may be landed twice)');
        }
      }
    }
    if (keep.length + drop.length > 0) report.rowsDropped = (await deps.settleHolds(keep, drop)).rowsDropped;
    report.kept = keep.length;
    report.dropped = drop.length;
    this.tenures = tenures;
    return report;
  }

  /**
   * The first offset a new tenure reads: its `since` becomes it if higher than the
   * committed offset read at the settle (a commit that became visible after it, or a
   * lost offset reset to the latest), before its first commit carries the history.
   */
  firstRead(tenure: PartitionTenure, offset: number): void {
    if (tenure.sinceFixed) return;
    tenure.sinceFixed = true;
    const last = tenure.history.at(-1)!;
    if (offset <= last.since) return;
    tenure.history = [...tenure.history.slice(0, -1), { id: last.id, since: offset }];
    tenure.metadata = formatHistory(tenure.history);
  }

  /**
   * The offset to commit after a batch ending at `next`: carried to the end of a batch
   * left held whose offsets it stops inside (those records are landed here, held;
   * committing them releases the hold, which a commit inside it would not).
   */
  commitThrough(tenure: PartitionTenure, next: number): number {
    let through = next;
    for (const held of tenure.leftHeld) if (held.first < through && through < held.next) through = held.next;
    return through;
  }

  /** A commit of `next` was answered: the left-held batches it covers are released. */
  committed(tenure: PartitionTenure, next: number): void {
    if (tenure.leftHeld.length > 0) tenure.leftHeld = tenure.leftHeld.filter((held) => held.next > next);
  }
}
